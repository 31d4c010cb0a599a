// Bounded little-endian / LEB128 encoding used by the patch formats. ByteReader never reads
// past its span: every getter returns kCorrupt ("truncated ...") instead.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"

namespace qp::delta {

// The signed value of a zigzag-encoded varint.
inline std::int64_t ZigZagDecode(std::uint64_t u) {
  return static_cast<std::int64_t>(u >> 1) ^ -static_cast<std::int64_t>(u & 1);
}

// The `bits`-bit two's complement value in the low bits of v (1 <= bits <= 64).
inline std::int64_t SignExtend(std::uint64_t v, int bits) {
  return static_cast<std::int64_t>(v << (64 - bits)) >> (64 - bits);
}

// Fixed-width little-endian access to bytes already in memory (1 to 8 bytes; the caller
// has checked the bounds).
inline std::uint64_t LoadLe(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}
inline void StoreLe(std::uint8_t* p, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

class ByteWriter {
 public:
  void U8(std::uint8_t v) { buf_.push_back(v); }
  void U32(std::uint32_t v);
  void U64(std::uint64_t v);
  void Varint(std::uint64_t v);
  void SignedVarint(std::int64_t v);  // zigzag
  void Bytes(std::span<const std::uint8_t> b) { buf_.insert(buf_.end(), b.begin(), b.end()); }
  void String(const std::string& s);  // varint length + bytes

  std::vector<std::uint8_t>& buffer() { return buf_; }
  std::vector<std::uint8_t> Take() { return std::move(buf_); }

 private:
  std::vector<std::uint8_t> buf_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const std::uint8_t> data) : data_(data) {}

  Result<std::uint8_t> U8(const char* what);
  Result<std::uint32_t> U32(const char* what);
  Result<std::uint64_t> U64(const char* what);
  // At most 10 bytes; kCorrupt on overflow.
  Result<std::uint64_t> Varint(const char* what);
  Result<std::int64_t> SignedVarint(const char* what);
  // A varint that must be <= max (kTooLarge otherwise).
  Result<std::uint64_t> BoundedVarint(const char* what, std::uint64_t max);
  Result<std::span<const std::uint8_t>> Bytes(const char* what, std::uint64_t n);
  // Varint length (<= max_len) then bytes.
  Result<std::string> String(const char* what, std::uint64_t max_len);

  std::size_t position() const { return pos_; }
  std::size_t remaining() const { return data_.size() - pos_; }

 private:
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
};

}  // namespace qp::delta
