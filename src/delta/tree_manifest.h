// The manifest of a component tree: every path with its type, permission bits, size and
// SHA-256, sorted bytewise by path, and the tree digest computed over it. A patch carries
// the manifest of the tree it produces and the digest of the tree it applies to.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/hash.h"
#include "core/result.h"

namespace qp::delta {

enum class EntryType : std::uint8_t { kFile = 1, kDirectory = 2, kSymlink = 3 };

struct ManifestEntry {
  std::string path;  // relative, '/'-separated; "." for the single file of a file patch
  EntryType type = EntryType::kFile;
  std::uint32_t mode = 0;  // permission bits (07777)
  std::uint64_t size = 0;  // file: bytes; symlink: target length; directory: 0
  Sha256Digest sha256{};   // file: content; symlink: target; directory: zero
};

using Manifest = std::vector<ManifestEntry>;

// Limits on what a manifest read from an untrusted patch may hold.
inline constexpr std::size_t kMaxPathLength = 4096;
inline constexpr std::size_t kMaxEntries = 1'000'000;

// Checks that `path` is a safe relative path: non-empty, no leading '/', no empty, "." or
// ".." component, no NUL or other control character, at most kMaxPathLength bytes. kCorrupt naming
// the path otherwise.
Status ValidateRelativePath(const std::string& path);

// Old files kept in memory as they are hashed, for a patch that reads them again as its
// sources: each byte of a held file comes from disk once. Only the wanted entry paths are
// held, at most `budget` bytes in all; any other file is hashed as a stream and read
// again from disk by the patch. A held file is mapped where the Env allows it
// (RandomAccessFile::Map: the page cache's pages, no copy; the store's live files, which
// nothing else writes while it holds their lock), else copied, and then the patch reads
// exactly the bytes that were hashed.
class HeldSources {
 public:
  HeldSources() = default;  // holds nothing
  HeldSources(std::set<std::string> wanted, std::uint64_t budget)
      : wanted_(std::move(wanted)), budget_(budget) {}
  // HashFile of `file`, the tree's entry `entry_path`, keeping its bytes if it is wanted
  // and they fit what is left of the budget.
  Result<std::pair<std::uint64_t, Sha256Digest>> Hash(Env* env, const std::string& entry_path,
                                                      const std::string& file);
  // Holds the file `entry_path` of the tree under `root` now, before ScanTree reaches it
  // (which then takes what is held): each parent must be a directory and the entry a
  // regular file, as the scan would find them. For work that can begin before the scan.
  Status HoldEarly(Env* env, const std::string& root, const std::string& entry_path);
  // The bytes held for `entry_path`, or nullopt.
  std::optional<std::span<const std::uint8_t>> Find(const std::string& entry_path) const;
  std::uint64_t held_bytes() const { return used_; }
  std::uint64_t budget() const { return budget_; }

 private:
  struct Held {
    std::unique_ptr<RandomAccessFile> mapped;  // the bytes' owner, when mapped
    std::vector<std::uint8_t> copy;            // else
    std::span<const std::uint8_t> bytes;       // in one of them
    Sha256Digest sha256{};
  };
  std::set<std::string> wanted_;
  std::uint64_t budget_ = 0, used_ = 0;
  std::map<std::string, Held, std::less<>> held_;
};

// Scans the tree under `root` (files, directories, symlinks; anything else is an error),
// hashing every file (through `held` when given). The root itself is not an entry. Returns
// entries sorted by path.
Result<Manifest> ScanTree(Env* env, const std::string& root, HeldSources* held = nullptr);

// A manifest for a single file (one entry with path ".").
Result<Manifest> ScanSingleFile(Env* env, const std::string& path, HeldSources* held = nullptr);

// The file system path of manifest entry `path` under `root` ("." is the root itself).
std::string ResolveEntryPath(const std::string& root, const std::string& path);

// SHA-256 over the canonical encoding of the manifest (see docs/patch-format.md).
Sha256Digest ManifestDigest(const Manifest& manifest);

// Streams a file's SHA-256 and size through the env.
Result<std::pair<std::uint64_t, Sha256Digest>> HashFile(Env* env, const std::string& path);
// The same, through `held` (the tree's entry `entry_path`) when it is not null.
Result<std::pair<std::uint64_t, Sha256Digest>> HashFile(Env* env, const std::string& path,
                                                        HeldSources* held,
                                                        const std::string& entry_path);

}  // namespace qp::delta
