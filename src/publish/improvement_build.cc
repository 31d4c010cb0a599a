// quietpatch-repo build: the patches of one improvement, from the base tree and from every
// earlier improvement still installed somewhere, so that each device jumps straight to it.
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/hash.h"
#include "delta/tree_manifest.h"
#include "delta/tree_patch.h"
#include "publish/publisher.h"

namespace qp::publish {

std::string NextFreeLabel(Env* env, const RepoPaths& paths, const std::string& component,
                          const std::string& base);

namespace {

Result<std::string> TreeDigest(Env* env, const std::string& tree) {
  QP_ASSIGN_OR_RETURN(auto m, delta::ScanTree(env, tree));
  return HexEncode(delta::ManifestDigest(m));
}

}  // namespace

Status BuildImprovement(Env* env, const RepoPaths& paths, BuildSpec spec) {
  if (spec.component.empty() || spec.platform.empty() || spec.base.empty()) {
    return Error(ErrorCode::kInvalidArgument, "build needs --component, --platform and --base");
  }
  if (spec.urgency != "critical" && spec.urgency != "high" && spec.urgency != "normal") {
    return Error(ErrorCode::kInvalidArgument, "urgency must be critical, high or normal");
  }
  if (spec.label.empty()) spec.label = NextFreeLabel(env, paths, spec.component, spec.base);
  if (spec.label.find_first_not_of("abcdefghijklmnopqrstuvwxyz") != std::string::npos) {
    return Error(ErrorCode::kInvalidArgument, "label must be lowercase letters");
  }
  if (env->Stat(spec.out_dir).ok()) {
    return Error(ErrorCode::kAlreadyExists, spec.out_dir + " exists; build writes a new directory");
  }
  QP_RETURN_IF_ERROR(MakeDirs(env, spec.out_dir, 0755));
  QP_ASSIGN_OR_RETURN(std::string result, TreeDigest(env, spec.new_tree));
  std::string stem = spec.component + "-" + spec.base + "-" + spec.label;
  std::vector<std::pair<std::string, std::string>> sources = {{"base", spec.base_tree}};
  for (const auto& e : spec.earlier) sources.push_back(e);
  nlohmann::json patches = nlohmann::json::array();
  for (const auto& [from, tree] : sources) {
    std::string file = stem + (from == "base" ? "" : "-from-" + from) + "." + spec.platform + ".qpatch";
    if (spec.progress) spec.progress("patch from " + from + ": " + file);
    delta::BuildOptions options;
    options.diff.threads = spec.threads;
    options.on_file = [&](const std::string& path, std::size_t i, std::size_t n) {
      if (spec.progress) spec.progress("  [" + std::to_string(i) + "/" + std::to_string(n) + "] " + path);
    };
    auto stats = delta::BuildTreePatch(env, tree, spec.new_tree, JoinPath(spec.out_dir, file), options);
    if (!stats.ok()) return stats.error().WithContext("patch from " + from);
    QP_ASSIGN_OR_RETURN(std::string source, TreeDigest(env, tree));
    patches.push_back({{"file", file},
                       {"from", from},
                       {"source_digest", source},
                       {"result_digest", result},
                       {"bytes", stats->patch_bytes}});
  }
  nlohmann::json description{{"component", spec.component},
                             {"platform", spec.platform},
                             {"base", spec.base},
                             {"label", spec.label},
                             {"cves", spec.cves},
                             {"urgency", spec.urgency},
                             {"exploited", spec.exploited},
                             {"restart", spec.restart},
                             {"result_digest", result},
                             {"patches", patches}};
  return WriteFileDurably(env, JoinPath(spec.out_dir, "improvement.json"), description.dump(2) + "\n", 0644);
}

}  // namespace qp::publish
