#include "delta/byte_io.h"

namespace qp::delta {

void ByteWriter::U32(std::uint32_t v) {
  for (int i = 0; i < 4; ++i) buf_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void ByteWriter::U64(std::uint64_t v) {
  for (int i = 0; i < 8; ++i) buf_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void ByteWriter::Varint(std::uint64_t v) {
  while (v >= 0x80) {
    buf_.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  buf_.push_back(static_cast<std::uint8_t>(v));
}
void ByteWriter::SignedVarint(std::int64_t v) {
  Varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
}
void ByteWriter::String(const std::string& s) {
  Varint(s.size());
  buf_.insert(buf_.end(), s.begin(), s.end());
}

namespace {
Error Truncated(const char* what) {
  return Error(ErrorCode::kCorrupt, std::string("truncated ") + what);
}
}  // namespace

Result<std::uint8_t> ByteReader::U8(const char* what) {
  if (remaining() < 1) return Truncated(what);
  return data_[pos_++];
}

Result<std::uint32_t> ByteReader::U32(const char* what) {
  if (remaining() < 4) return Truncated(what);
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(data_[pos_++]) << (8 * i);
  return v;
}

Result<std::uint64_t> ByteReader::U64(const char* what) {
  if (remaining() < 8) return Truncated(what);
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(data_[pos_++]) << (8 * i);
  return v;
}

Result<std::uint64_t> ByteReader::Varint(const char* what) {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (remaining() < 1) return Truncated(what);
    std::uint8_t b = data_[pos_++];
    if (shift == 63 && b > 1) break;
    v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  return Error(ErrorCode::kCorrupt, std::string("overlong varint in ") + what);
}

Result<std::int64_t> ByteReader::SignedVarint(const char* what) {
  QP_ASSIGN_OR_RETURN(std::uint64_t u, Varint(what));
  return ZigZagDecode(u);
}

Result<std::uint64_t> ByteReader::BoundedVarint(const char* what, std::uint64_t max) {
  QP_ASSIGN_OR_RETURN(std::uint64_t v, Varint(what));
  if (v > max) {
    return Error(ErrorCode::kTooLarge, std::string(what) + " " + std::to_string(v) +
                                           " exceeds the limit of " + std::to_string(max));
  }
  return v;
}

Result<std::span<const std::uint8_t>> ByteReader::Bytes(const char* what, std::uint64_t n) {
  if (remaining() < n) return Truncated(what);
  auto s = data_.subspan(pos_, static_cast<std::size_t>(n));
  pos_ += static_cast<std::size_t>(n);
  return s;
}

Result<std::string> ByteReader::String(const char* what, std::uint64_t max_len) {
  QP_ASSIGN_OR_RETURN(std::uint64_t n, BoundedVarint(what, max_len));
  QP_ASSIGN_OR_RETURN(auto b, Bytes(what, n));
  return std::string(b.begin(), b.end());
}

}  // namespace qp::delta
