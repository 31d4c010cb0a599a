#include "tuf/bundle.h"

#include <cstring>

namespace qp::tuf {
namespace {

constexpr char kMagic[8] = {'Q', 'P', 'B', 'U', 'N', 'D', 'L', 'E'};
constexpr std::uint32_t kMaxEntries = 100000;
constexpr std::uint32_t kMaxName = 4096;

void PutU32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void PutU64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

std::vector<std::uint8_t> EncodeBundle(const BundleFiles& files) {
  std::vector<std::uint8_t> out(kMagic, kMagic + 8);
  PutU32(out, 1);
  PutU32(out, static_cast<std::uint32_t>(files.size()));
  for (const auto& [name, data] : files) {
    PutU32(out, static_cast<std::uint32_t>(name.size()));
    out.insert(out.end(), name.begin(), name.end());
    PutU64(out, data.size());
    out.insert(out.end(), data.begin(), data.end());
  }
  return out;
}

Result<BundleFiles> ParseBundle(std::span<const std::uint8_t> bytes) {
  std::size_t pos = 0;
  auto need = [&](std::uint64_t n, const std::string& what) -> Status {
    if (n > bytes.size() - pos) return Error(ErrorCode::kCorrupt, "bundle truncated in " + what);
    return OkStatus();
  };
  auto u32 = [&]() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v |= static_cast<std::uint32_t>(bytes[pos + static_cast<std::size_t>(i)]) << (8 * i);
    pos += 4;
    return v;
  };
  auto u64 = [&]() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<std::uint64_t>(bytes[pos + static_cast<std::size_t>(i)]) << (8 * i);
    pos += 8;
    return v;
  };
  QP_RETURN_IF_ERROR(need(16, "header"));
  if (std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return Error(ErrorCode::kCorrupt, "not a quietpatch bundle (bad magic)");
  }
  pos = 8;
  std::uint32_t version = u32();
  if (version != 1) {
    return Error(ErrorCode::kUnsupported,
                 "bundle version " + std::to_string(version) + " is not supported");
  }
  std::uint32_t count = u32();
  if (count > kMaxEntries) return Error(ErrorCode::kCorrupt, "bundle lists too many entries");
  BundleFiles files;
  for (std::uint32_t i = 0; i < count; ++i) {
    std::string what = "entry " + std::to_string(i);
    QP_RETURN_IF_ERROR(need(4, what));
    std::uint32_t name_len = u32();
    if (name_len == 0 || name_len > kMaxName)
      return Error(ErrorCode::kCorrupt, what + ": bad name length");
    QP_RETURN_IF_ERROR(need(name_len, what));
    std::string name(reinterpret_cast<const char*>(bytes.data() + pos), name_len);
    pos += name_len;
    if (name.find('\0') != std::string::npos || name[0] == '/' ||
        name.find("..") != std::string::npos) {
      return Error(ErrorCode::kCorrupt, what + ": unsafe name");
    }
    QP_RETURN_IF_ERROR(need(8, what));
    std::uint64_t len = u64();
    QP_RETURN_IF_ERROR(need(len, what + " (" + name + ")"));
    if (!files
             .emplace(name, std::vector<std::uint8_t>(bytes.begin() + static_cast<long>(pos),
                                                      bytes.begin() + static_cast<long>(pos + len)))
             .second) {
      return Error(ErrorCode::kCorrupt, what + ": " + name + " appears twice");
    }
    pos += len;
  }
  if (pos != bytes.size()) return Error(ErrorCode::kCorrupt, "bundle has trailing bytes");
  return files;
}

Result<std::vector<std::uint8_t>> BundleFetcher::Fetch(const std::string& url,
                                                       std::uint64_t max_length) {
  static constexpr std::string_view kBase = "bundle:/";
  if (url.rfind(kBase, 0) != 0) return Error(ErrorCode::kNotFound, url + ": not in the bundle");
  auto it = files_.find(url.substr(kBase.size()));
  if (it == files_.end()) return Error(ErrorCode::kNotFound, url + ": not in the bundle");
  if (it->second.size() > max_length) {
    return Error(ErrorCode::kTooLarge,
                 url + ": more than " + std::to_string(max_length) + " bytes");
  }
  return it->second;
}

}  // namespace qp::tuf
