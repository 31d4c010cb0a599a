#include "store/dpkg_database.h"

#include <algorithm>

#include "core/durable_file.h"

namespace qp::store {
namespace {

// The status file of a machine with thousands of packages is a few MB.
constexpr std::uint64_t kMaxStatusBytes = 64ull << 20;
constexpr std::uint64_t kMaxListBytes = 16ull << 20;
constexpr std::size_t kMaxFiles = 100000;

Result<std::string> ReadText(Env* env, const std::string& path, std::uint64_t limit) {
  QP_ASSIGN_OR_RETURN(auto bytes, ReadFileLimited(env, path, limit));
  return std::string(bytes.begin(), bytes.end());
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// One field of a stanza: "Name: value", and its continuation lines.
struct Field {
  std::string_view name, value;
  std::vector<std::string_view> more;  // continuation lines, trimmed
};

Result<std::vector<Field>> ParseStanza(std::string_view stanza, std::size_t line_number) {
  std::vector<Field> fields;
  while (!stanza.empty()) {
    std::size_t nl = stanza.find('\n');
    std::string_view line = stanza.substr(0, nl);
    stanza = nl == std::string_view::npos ? std::string_view() : stanza.substr(nl + 1);
    ++line_number;
    if (line.empty()) continue;
    if (line.front() == ' ' || line.front() == '\t') {
      if (fields.empty()) {
        return Error(ErrorCode::kCorrupt,
                     "line " + std::to_string(line_number) + ": continuation without a field");
      }
      fields.back().more.push_back(Trim(line));
      continue;
    }
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Error(ErrorCode::kCorrupt, "line " + std::to_string(line_number) + ": not a field");
    }
    fields.push_back(Field{line.substr(0, colon), Trim(line.substr(colon + 1)), {}});
  }
  return fields;
}

std::string_view Value(const std::vector<Field>& fields, std::string_view name) {
  for (const auto& f : fields) {
    if (f.name == name) return f.value;
  }
  return {};
}

}  // namespace

Result<DpkgStanza> FindDpkgStanza(std::string_view status_text, std::string_view package) {
  std::string_view name = package, arch;
  if (std::size_t colon = package.find(':'); colon != std::string_view::npos) {
    name = package.substr(0, colon);
    arch = package.substr(colon + 1);
  }
  std::vector<DpkgStanza> found;
  std::size_t line_number = 0;
  std::string_view rest = status_text;
  while (!rest.empty()) {
    std::size_t end = rest.find("\n\n");
    std::string_view stanza = rest.substr(0, end == std::string_view::npos ? rest.size() : end + 1);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    std::size_t lines = static_cast<std::size_t>(std::count(stanza.begin(), stanza.end(), '\n'));
    // Cheap test first: most stanzas are other packages.
    if (stanza.find("Package: " + std::string(name) + "\n") == std::string_view::npos) {
      line_number += lines + 1;
      continue;
    }
    QP_ASSIGN_OR_RETURN(auto fields, ParseStanza(stanza, line_number));
    line_number += lines + 1;
    if (Value(fields, "Package") != name) continue;
    DpkgStanza s;
    s.package = std::string(name);
    s.architecture = std::string(Value(fields, "Architecture"));
    if (!arch.empty() && s.architecture != arch) continue;
    s.version = std::string(Value(fields, "Version"));
    s.status = std::string(Value(fields, "Status"));
    for (const auto& f : fields) {
      if (f.name != "Conffiles") continue;
      for (auto line : f.more) {
        std::string_view path = line.substr(0, line.find(' '));
        if (!path.starts_with('/')) {
          return Error(ErrorCode::kCorrupt, "conffile of " + s.package + " is not absolute");
        }
        s.conffiles.emplace_back(path);
      }
    }
    found.push_back(std::move(s));
  }
  if (found.empty()) {
    return Error(ErrorCode::kNotFound, std::string(package) + " is not known to dpkg");
  }
  if (found.size() > 1) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(package) + " is installed for several architectures; name one (" +
                     std::string(name) + ":" + found[0].architecture + ")");
  }
  if (found[0].version.empty()) {
    return Error(ErrorCode::kCorrupt, std::string(package) + " has no Version in dpkg's status");
  }
  return std::move(found[0]);
}

Result<DpkgPackage> ReadDpkgPackage(Env* env, const std::string& admin_dir,
                                    std::string_view package) {
  QP_ASSIGN_OR_RETURN(auto status, ReadText(env, JoinPath(admin_dir, "status"), kMaxStatusBytes));
  DpkgPackage out;
  QP_ASSIGN_OR_RETURN(out.stanza, FindDpkgStanza(status, package));
  const DpkgStanza& s = out.stanza;
  if (!out.installed()) {
    return Error(ErrorCode::kFailedPrecondition,
                 s.package + " is not wholly installed (dpkg status: " + s.status + ")");
  }
  // Multi-Arch: same packages keep their lists under the qualified name.
  std::string info = JoinPath(admin_dir, "info");
  std::string base = JoinPath(info, s.package + ":" + s.architecture);
  auto list = ReadText(env, base + ".list", kMaxListBytes);
  if (!list.ok() && list.error().code() == ErrorCode::kNotFound) {
    base = JoinPath(info, s.package);
    list = ReadText(env, base + ".list", kMaxListBytes);
  }
  if (!list.ok()) return list.error().WithContext("file list of " + s.package);
  std::vector<std::string> conffiles = s.conffiles;
  std::sort(conffiles.begin(), conffiles.end());
  std::string_view rest = *list;
  while (!rest.empty()) {
    std::size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (line.empty() || line == "/." || line == "/") continue;
    if (!line.starts_with('/')) {
      return Error(ErrorCode::kCorrupt, "file list of " + s.package + ": a path is not absolute");
    }
    std::string path(line);
    if (std::binary_search(conffiles.begin(), conffiles.end(), path)) continue;
    auto st = env->Stat(path);
    if (!st.ok()) {
      if (st.error().code() == ErrorCode::kNotFound) continue;  // removed by hand: not ours
      return st.error();
    }
    if (st->type != FileType::kRegular) continue;  // directories, symlinks
    if (out.files.size() >= kMaxFiles) {
      return Error(ErrorCode::kTooLarge, s.package + " owns too many files");
    }
    out.files.push_back(std::move(path));
  }
  std::sort(out.files.begin(), out.files.end());
  auto sums = ReadText(env, base + ".md5sums", kMaxListBytes);
  if (sums.ok()) {
    rest = *sums;
    while (!rest.empty()) {
      std::size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      std::size_t sep = line.find("  ");
      if (sep != 32) continue;  // not "<32 hex>  <path>"
      out.md5sums["/" + std::string(line.substr(sep + 2))] = std::string(line.substr(0, 32));
    }
  } else if (sums.error().code() != ErrorCode::kNotFound) {
    return sums.error();
  }
  return out;
}

std::string PlatformOfDebianArchitecture(std::string_view architecture) {
  if (architecture == "amd64") return "linux-x86_64";
  if (architecture == "arm64") return "linux-aarch64";
  if (architecture == "armhf") return "linux-armhf";
  if (architecture == "i386") return "linux-i686";
  if (architecture == "riscv64") return "linux-riscv64";
  if (architecture == "ppc64el") return "linux-ppc64le";
  if (architecture == "s390x") return "linux-s390x";
  return "";
}

}  // namespace qp::store
