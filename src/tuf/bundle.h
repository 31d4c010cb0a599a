// Offline bundles: one file holding repository files (metadata and the patches of an
// improvement) for devices without network access. A device reads it through
// BundleFetcher and verifies it exactly as online, with its own trusted root: the bundle
// itself is untrusted bytes.
//
// Format (version 1), little-endian:
//   "QPBUNDLE" (8 bytes), u32 version = 1, u32 entry count (<= 100000)
//   per entry: u32 name length (1..4096), name (a relative path such as
//   "metadata/timestamp.json" or "targets/improvements/.../<sha256>.x.qpatch"),
//   u64 data length, data
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tuf/fetcher.h"

namespace qp::tuf {

using BundleFiles = std::map<std::string, std::vector<std::uint8_t>>;

std::vector<std::uint8_t> EncodeBundle(const BundleFiles& files);
// kCorrupt naming the entry for malformed input; kUnsupported for another version.
Result<BundleFiles> ParseBundle(std::span<const std::uint8_t> bytes);

// Serves "<base>metadata/..." and "<base>targets/..." from a bundle, with the base
// "bundle:/" (use BundleFetcher::kMetadataUrl / kTargetsUrl as the Updater's URLs).
class BundleFetcher final : public Fetcher {
 public:
  static constexpr const char* kMetadataUrl = "bundle:/metadata/";
  static constexpr const char* kTargetsUrl = "bundle:/targets/";
  explicit BundleFetcher(BundleFiles files) : files_(std::move(files)) {}
  Result<std::vector<std::uint8_t>> Fetch(const std::string& url,
                                          std::uint64_t max_length) override;

 private:
  BundleFiles files_;
};

}  // namespace qp::tuf
