// quietpatch-repo build: the patches of one improvement, from the base tree and from every
// earlier improvement still installed somewhere, so that each device jumps straight to it.
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/hash.h"
#include "delta/tree_manifest.h"
#include "delta/tree_patch.h"
#include "publish/publisher.h"

namespace qp::publish {

namespace {

constexpr const char* kDescriptionFile = "improvement.json";
constexpr std::uint64_t kMaxDescriptionBytes = 1 << 20;

Result<std::string> TreeDigest(Env* env, const std::string& tree) {
  QP_ASSIGN_OR_RETURN(auto m, delta::ScanTree(env, tree));
  return HexEncode(delta::ManifestDigest(m));
}

}  // namespace

Status BuildImprovement(Env* env, const RepoPaths& paths, BuildSpec spec) {
  if (spec.component.empty() || spec.platform.empty() || spec.base.empty()) {
    return Error(ErrorCode::kInvalidArgument, "build needs --component, --platform and --base");
  }
  if (!contract::IsValidUrgency(spec.urgency)) {
    return Error(ErrorCode::kInvalidArgument, "urgency must be critical, high or normal");
  }
  if (spec.label.empty()) {
    auto next = NextFreeLabel(env, spec.clock, paths, spec.component, spec.base);
    if (!next.ok()) return next.error().WithContext("finding the next free label");
    spec.label = *next;
  }
  if (!contract::IsValidLabel(spec.label)) {
    return Error(
        ErrorCode::kInvalidArgument,
        "label must be 1 to " + std::to_string(contract::kMaxLabelLength) + " lowercase letters");
  }
  if (env->Stat(spec.out_dir).ok()) {
    return Error(ErrorCode::kAlreadyExists, spec.out_dir + " exists; build writes a new directory");
  }
  QP_RETURN_IF_ERROR(MakeDirs(env, spec.out_dir, 0755));
  contract::ImprovementTarget common;
  common.id = {spec.component, spec.base, spec.label};
  common.platform = spec.platform;
  common.cves = spec.cves;
  common.urgency = spec.urgency;
  common.exploited = spec.exploited;
  common.restart = spec.restart;
  QP_ASSIGN_OR_RETURN(common.result_digest, TreeDigest(env, spec.new_tree));
  std::string stem = spec.component + "-" + spec.base + "-" + spec.label;
  std::vector<std::pair<std::string, std::string>> sources = {
      {std::string(contract::kFromBase), spec.base_tree}};
  for (const auto& e : spec.earlier) sources.push_back(e);
  nlohmann::json patches = nlohmann::json::array();
  for (const auto& [from, tree] : sources) {
    std::string file = stem + (from == contract::kFromBase ? "" : "-from-" + from) + "." +
                       spec.platform + ".qpatch";
    if (spec.progress) spec.progress("patch from " + from + ": " + file);
    delta::BuildOptions options;
    options.diff.threads = spec.threads;
    options.on_file = [&](const std::string& path, std::size_t i, std::size_t n) {
      if (spec.progress)
        spec.progress("  [" + std::to_string(i) + "/" + std::to_string(n) + "] " + path);
    };
    auto stats =
        delta::BuildTreePatch(env, tree, spec.new_tree, JoinPath(spec.out_dir, file), options);
    if (!stats.ok()) return stats.error().WithContext("patch from " + from);
    contract::ImprovementTarget target = common;
    target.from = from;
    QP_ASSIGN_OR_RETURN(target.source_digest, TreeDigest(env, tree));
    patches.push_back(
        {{"file", file}, {"bytes", stats->patch_bytes}, {"custom", target.ToCustom()}});
  }
  return WriteFileDurably(env, JoinPath(spec.out_dir, kDescriptionFile),
                          nlohmann::json{{"patches", patches}}.dump(2) + "\n", 0644);
}

Result<BuiltImprovement> ReadBuiltImprovement(Env* env, const std::string& improvement_dir) {
  const std::string path = JoinPath(improvement_dir, kDescriptionFile);
  const auto bad = [&](const std::string& what) {
    return Error(ErrorCode::kCorrupt, path + ": " + what);
  };
  QP_ASSIGN_OR_RETURN(auto bytes, ReadFileLimited(env, path, kMaxDescriptionBytes));
  auto j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("patches") || !j["patches"].is_array() ||
      j["patches"].empty()) {
    return bad("not an improvement description (quietpatch-repo build writes one)");
  }
  BuiltImprovement out;
  for (const auto& p : j["patches"]) {
    if (!p.is_object() || !p.contains("file") || !p["file"].is_string() || !p.contains("bytes") ||
        !p["bytes"].is_number_unsigned() || !p.contains("custom")) {
      return bad("each patch needs file, bytes and custom");
    }
    BuiltPatch patch;
    patch.file = p["file"].get<std::string>();
    patch.bytes = p["bytes"].get<std::uint64_t>();
    if (patch.file.empty() || patch.file.find('/') != std::string::npos || patch.file[0] == '.') {
      return bad("patch file \"" + patch.file + "\" is not a plain name in the directory");
    }
    QP_ASSIGN_OR_RETURN(patch.target,
                        contract::ImprovementTarget::FromCustom(p["custom"], patch.file));
    if (!out.patches.empty() && patch.target.id != out.patches.front().target.id) {
      return bad("patches of different improvements");
    }
    out.patches.push_back(std::move(patch));
  }
  return out;
}

}  // namespace qp::publish
