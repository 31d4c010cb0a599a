// Streaming SHA-256 and SHA-512 over OpenSSL 3, and lowercase hex encoding.
// Hashers are not thread-safe; use one per thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace qp {

using Sha256Digest = std::array<std::uint8_t, 32>;
using Sha512Digest = std::array<std::uint8_t, 64>;

enum class HashAlgorithm { kSha256, kSha512 };

// Incremental hasher: Update() any number of times, then Finish() once.
class Hasher {
 public:
  explicit Hasher(HashAlgorithm algorithm);
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void Update(std::span<const std::uint8_t> data);
  void Update(std::string_view data);
  // Returns the digest (32 or 64 bytes). The hasher must not be used afterwards.
  std::vector<std::uint8_t> Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

class Sha256 {
 public:
  Sha256() : h_(HashAlgorithm::kSha256) {}
  void Update(std::span<const std::uint8_t> data) { h_.Update(data); }
  void Update(std::string_view data) { h_.Update(data); }
  Sha256Digest Finish();

 private:
  Hasher h_;
};

Sha256Digest Sha256Of(std::span<const std::uint8_t> data);
Sha256Digest Sha256Of(std::string_view data);
Sha512Digest Sha512Of(std::span<const std::uint8_t> data);

// Lowercase hex of the bytes.
std::string HexEncode(std::span<const std::uint8_t> data);
// Decodes hex (either case); kInvalidArgument on odd length or a non-hex character.
Result<std::vector<std::uint8_t>> HexDecode(std::string_view hex);

// Compares two byte ranges in time that depends only on their lengths.
bool ConstantTimeEquals(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

}  // namespace qp
