#include "store/dpkg_database.h"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>

#include "core/ascii.h"
#include "core/hash.h"
#include "core/platform.h"
#include "core/process.h"

namespace qp::store {
namespace {

// A package's file list runs to a few MB for the largest (linux-image, libnode).
constexpr std::size_t kMaxQueryOutput = 64 << 20;
constexpr std::size_t kMaxFiles = 100000;
constexpr auto kQueryTimeout = std::chrono::seconds(60);

// Runs dpkg-query (its standard output only, whole, in the C locale).
Result<ProcessResult> DpkgQuery(const std::string& admin_dir, std::vector<std::string> args) {
  ProcessSpec spec;
  spec.argv = {"dpkg-query"};
  if (!admin_dir.empty()) spec.argv.push_back("--admindir=" + admin_dir);
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {"LC_ALL=C"};
  spec.capture_stderr = false;
  spec.timeout = kQueryTimeout;
  spec.max_output = kMaxQueryOutput;
  spec.overflow = ProcessSpec::Overflow::kFail;
  auto r = RunProcess(spec);
  if (!r.ok()) return r.error().WithContext("dpkg-query");
  if (r->timed_out || r->output_overflowed) {
    return Error(ErrorCode::kIo, "dpkg-query " + args.back() + ": " + r->Describe());
  }
  return r;
}

// The MD5 of a file, lowercase hex: dpkg's records are MD5s. Compared with them only, never
// trusted for integrity (the store's digests are SHA-256).
Result<std::string> FileMd5(Env* env, const std::string& path) {
  QP_ASSIGN_OR_RETURN(auto file, env->NewRandomAccessFile(path));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) != 1) {
    return Error(ErrorCode::kInternal, "MD5 is not available");
  }
  std::vector<std::uint8_t> buf(1 << 16);
  for (std::uint64_t at = 0; at < file->Size();) {
    QP_ASSIGN_OR_RETURN(std::size_t n, file->ReadAt(at, buf));
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
    at += n;
  }
  std::uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return HexEncode(std::span<const std::uint8_t>(md, len));
}

}  // namespace

Result<std::vector<DpkgStanza>> ParseDpkgQueryStanzas(std::string_view text) {
  std::vector<DpkgStanza> stanzas;
  bool open = false;
  for (std::string_view line : Lines(text)) {
    if (line == "--") {
      if (!open) return Error(ErrorCode::kCorrupt, "dpkg-query: a stanza without its fields");
      open = false;
      continue;
    }
    if (!open) {
      auto fields = Split(line, '\t');
      if (fields.size() != 4 || fields[0].empty()) {
        return Error(ErrorCode::kCorrupt, "dpkg-query: unexpected line");
      }
      if (stanzas.size() >= 64) return Error(ErrorCode::kTooLarge, "dpkg-query: too many answers");
      stanzas.push_back(DpkgStanza{std::string(fields[0]),
                                   std::string(fields[1]),
                                   std::string(fields[2]),
                                   std::string(fields[3]),
                                   {}});
      open = true;
      continue;
    }
    if (line.empty()) continue;  // no conffiles
    // " /etc/ssl/openssl.cnf <md5>[ obsolete]"
    if (!line.starts_with(" /")) return Error(ErrorCode::kCorrupt, "dpkg-query: bad conffile line");
    std::string_view path = line.substr(1, line.find(' ', 1) - 1);
    stanzas.back().conffiles.emplace_back(path);
  }
  if (open) return Error(ErrorCode::kCorrupt, "dpkg-query: answer cut short");
  return stanzas;
}

Result<DpkgStanza> QueryDpkgStanza(const std::string& admin_dir, const std::string& package) {
  QP_ASSIGN_OR_RETURN(
      auto r, DpkgQuery(admin_dir, {"-W", std::string("-f=") + kDpkgQueryFormat, "--", package}));
  if (r.exit_code == 1) return Error(ErrorCode::kNotFound, package + " is not known to dpkg");
  if (r.exit_code != 0) {
    return Error(ErrorCode::kIo, "dpkg-query -W " + package + ": " + r.Describe());
  }
  QP_ASSIGN_OR_RETURN(auto stanzas, ParseDpkgQueryStanzas(r.output));
  // Packages dpkg knows only as "not installed" (in its available list) are not installed.
  std::erase_if(stanzas, [](const DpkgStanza& s) { return s.status.ends_with(" not-installed"); });
  if (stanzas.empty()) return Error(ErrorCode::kNotFound, package + " is not installed");
  if (stanzas.size() > 1) {
    return Error(
        ErrorCode::kInvalidArgument,
        package + " is installed for several architectures; name one (" + stanzas[0].package + ")");
  }
  DpkgStanza& s = stanzas[0];
  if (s.version.empty()) return Error(ErrorCode::kCorrupt, package + ": dpkg gives no version");
  if (s.status != "install ok installed") {
    return Error(ErrorCode::kFailedPrecondition,
                 package + " is not wholly installed (dpkg status: " + s.status + ")");
  }
  return std::move(s);
}

Result<DpkgPackage> QueryDpkgPackage(Env* env, const std::string& admin_dir,
                                     const std::string& package) {
  DpkgPackage out;
  QP_ASSIGN_OR_RETURN(out.stanza, QueryDpkgStanza(admin_dir, package));
  const std::string& name = out.stanza.package;
  QP_ASSIGN_OR_RETURN(auto list, DpkgQuery(admin_dir, {"-L", "--", name}));
  if (!list.ok()) return Error(ErrorCode::kIo, "dpkg-query -L " + name + ": " + list.Describe());
  std::vector<std::string> conffiles = out.stanza.conffiles;
  std::sort(conffiles.begin(), conffiles.end());
  for (std::string_view line : Lines(list.output)) {
    // Diversions are reported on lines of their own ("diverted by ..."): not paths.
    if (!line.starts_with('/') || line == "/.") continue;
    std::string path(line);
    if (std::binary_search(conffiles.begin(), conffiles.end(), path)) continue;
    auto st = env->Stat(path);
    if (!st.ok()) {
      if (st.error().code() == ErrorCode::kNotFound) continue;  // removed by hand: not ours
      return st.error();
    }
    if (st->type != FileType::kRegular) continue;  // directories, symlinks
    if (out.files.size() >= kMaxFiles) {
      return Error(ErrorCode::kTooLarge, name + " owns too many files");
    }
    out.files.push_back(std::move(path));
  }
  std::sort(out.files.begin(), out.files.end());
  out.files.erase(std::unique(out.files.begin(), out.files.end()), out.files.end());
  QP_ASSIGN_OR_RETURN(auto sums, DpkgQuery(admin_dir, {"--control-show", name, "md5sums"}));
  if (sums.ok()) {  // a package may have no md5sums file
    for (std::string_view line : Lines(sums.output)) {
      if (line.size() < 35 || line.substr(32, 2) != "  ") continue;  // "<32 hex>  <path>"
      out.md5sums["/" + std::string(line.substr(34))] = std::string(line.substr(0, 32));
    }
  }
  return out;
}

Result<std::vector<DpkgFileDifference>> DifferencesFromDpkg(Env* env, const DpkgPackage& package) {
  std::vector<DpkgFileDifference> out;
  for (const auto& path : package.files) {
    auto sum = package.md5sums.find(path);
    if (sum == package.md5sums.end()) continue;
    auto live = FileMd5(env, path);
    if (!live.ok() && live.error().code() != ErrorCode::kNotFound) return live.error();
    std::string md5 = live.ok() ? *live : "";
    if (md5 != sum->second) out.push_back({path, sum->second, md5});
  }
  return out;
}

}  // namespace qp::store
