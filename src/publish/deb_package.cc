#include "publish/deb_package.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "core/ascii.h"
#include "core/durable_file.h"
#include "core/process.h"
#include "core/tree_writer.h"

namespace qp::publish {
namespace {

constexpr auto kDpkgDebTimeout = std::chrono::minutes(10);  // a 300 MB browser package
constexpr std::size_t kMaxControlBytes = 1 << 20;

// dpkg-deb ARGS, in the C locale; its standard output (whole) on success.
Result<std::string> DpkgDeb(std::vector<std::string> args, const std::string& deb) {
  ProcessSpec spec;
  spec.argv = {"dpkg-deb"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {"LC_ALL=C"};
  spec.timeout = kDpkgDebTimeout;
  spec.max_output = kMaxControlBytes;
  spec.overflow = ProcessSpec::Overflow::kFail;
  auto r = RunProcess(spec);
  if (!r.ok()) return r.error().WithContext("dpkg-deb");
  if (!r->ok()) {
    return Error(
        r->timed_out || r->output_overflowed ? ErrorCode::kIo : ErrorCode::kInvalidArgument,
        deb + ": dpkg-deb " + args.front() + ": " + r->Describe());
  }
  return std::move(r->output);
}

// Debian Policy 5.6.1 and 5.6.12, as far as a path and a component name need.
bool IsPlainField(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '+' || c == '-' || c == '~' || c == ':';
  });
}

// Leaves only regular files in `dir` (relative `rel` under the tree root), conffiles out.
Status KeepRegularFiles(Env* env, const std::string& root, const std::string& rel,
                        const std::set<std::string>& conffiles) {
  const std::string dir = rel.empty() ? root : JoinPath(root, rel);
  QP_ASSIGN_OR_RETURN(auto names, env->ListDir(dir));
  for (const auto& name : names) {
    const std::string child_rel = rel.empty() ? name : rel + "/" + name;
    const std::string path = JoinPath(root, child_rel);
    QP_ASSIGN_OR_RETURN(auto info, env->Stat(path));
    if (info.type == FileType::kDirectory) {
      QP_RETURN_IF_ERROR(KeepRegularFiles(env, root, child_rel, conffiles));
      QP_ASSIGN_OR_RETURN(auto left, env->ListDir(path));
      if (left.empty()) QP_RETURN_IF_ERROR(env->RemoveDir(path));
    } else if (info.type != FileType::kRegular || conffiles.count("/" + child_rel) != 0) {
      QP_RETURN_IF_ERROR(env->Unlink(path));
    }
  }
  return OkStatus();
}

}  // namespace

Result<DebControl> ParseDebControl(std::string_view fields, std::string_view conffiles) {
  const auto lines = Lines(fields);
  const auto parts = Split(lines.empty() ? "" : lines.front(), '\t');
  if (lines.size() != 1 || parts.size() != 3 ||
      !std::all_of(parts.begin(), parts.end(), IsPlainField) ||
      parts[0].find(':') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument,
                 "its Package, Version and Architecture fields are not plain values");
  }
  DebControl out{std::string(parts[0]), std::string(parts[1]), std::string(parts[2]), {}};
  for (std::string_view line : Lines(conffiles)) {
    line = TrimBlanks(line);
    // "remove-on-upgrade /etc/x" (dpkg >= 1.20.1): the path is the last word.
    if (auto sp = line.rfind(' '); sp != std::string_view::npos) line = line.substr(sp + 1);
    if (line.empty()) continue;
    if (line.front() != '/' || line.size() > 4096) {
      return Error(
          ErrorCode::kInvalidArgument,
          "conffiles lists \"" + std::string(line.substr(0, 64)) + "\", not an absolute path");
    }
    if (out.conffiles.size() >= 100000) {
      return Error(ErrorCode::kInvalidArgument, "conffiles lists too many files");
    }
    out.conffiles.insert(std::string(line));
  }
  return out;
}

Result<DebPackage> UnpackDeb(Env* env, const std::string& deb, const std::string& tree) {
  QP_ASSIGN_OR_RETURN(
      auto fields,
      DpkgDeb({"--show", "--showformat=${Package}\\t${Version}\\t${Architecture}\\n", deb}, deb));
  // Conffiles, from the control archive (absent for most libraries).
  const std::string control = tree + ".control";
  QP_RETURN_IF_ERROR(RemoveTree(env, control));
  QP_RETURN_IF_ERROR(DpkgDeb({"--control", deb, control}, deb));
  auto text = ReadFileLimited(env, JoinPath(control, "conffiles"), kMaxControlBytes);
  if (!text.ok() && text.error().code() != ErrorCode::kNotFound) return text.error();
  QP_RETURN_IF_ERROR(RemoveTree(env, control));
  std::string_view conffiles;
  if (text.ok()) conffiles = {reinterpret_cast<const char*>(text->data()), text->size()};
  auto parsed = ParseDebControl(fields, conffiles);
  if (!parsed.ok()) return parsed.error().WithContext(deb);
  if (env->Stat(tree).ok()) {
    return Error(ErrorCode::kAlreadyExists, tree + " exists; a package is unpacked anew");
  }
  QP_RETURN_IF_ERROR(MakeDirs(env, tree, 0755));
  QP_RETURN_IF_ERROR(DpkgDeb({"--extract", deb, tree}, deb));
  QP_RETURN_IF_ERROR(KeepRegularFiles(env, tree, "", parsed->conffiles));
  return DebPackage{parsed->package, parsed->version, parsed->architecture, tree};
}

}  // namespace qp::publish
