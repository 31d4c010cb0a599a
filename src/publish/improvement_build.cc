// quietpatch-repo build: the patches of one improvement, from each base tree and from every
// earlier improvement still installed somewhere, so that each device jumps straight to it;
// the trees given as directories or as Debian packages.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/durable_file.h"
#include "core/hash.h"
#include "core/platform.h"
#include "core/tree_writer.h"
#include "delta/tree_manifest.h"
#include "delta/tree_patch.h"
#include "publish/deb_package.h"
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
  // Every base the fix is built for, the first with its earlier improvements.
  std::vector<std::pair<std::string, std::string>> bases = {{spec.base, spec.base_tree}};
  bases.insert(bases.end(), spec.other_bases.begin(), spec.other_bases.end());
  for (std::size_t i = 0; i < bases.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (bases[i].first == bases[j].first) {
        return Error(ErrorCode::kInvalidArgument, "base " + bases[i].first + " is given twice");
      }
    }
  }
  if (spec.label.empty()) {
    for (const auto& [base, tree] : bases) {
      auto next = NextFreeLabel(env, spec.clock, paths, spec.component, base);
      if (!next.ok()) return next.error().WithContext("finding the next free label");
      if (spec.label.empty() || contract::LabelLess(spec.label, *next)) spec.label = *next;
    }
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
  common.platform = spec.platform;
  common.cves = spec.cves;
  common.urgency = spec.urgency;
  common.exploited = spec.exploited;
  common.restart = spec.restart;
  QP_ASSIGN_OR_RETURN(common.result_digest, TreeDigest(env, spec.new_tree));
  nlohmann::json patches = nlohmann::json::array();
  for (std::size_t b = 0; b < bases.size(); ++b) {
    const auto& [base, base_tree] = bases[b];
    const std::string stem = spec.component + "-" + base + "-" + spec.label;
    std::vector<std::pair<std::string, std::string>> sources = {
        {std::string(contract::kFromBase), base_tree}};
    if (b == 0) sources.insert(sources.end(), spec.earlier.begin(), spec.earlier.end());
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
      if (!stats.ok()) return stats.error().WithContext("patch from " + base + " " + from);
      contract::ImprovementTarget target = common;
      target.id = {spec.component, base, spec.label};
      target.from = from;
      QP_ASSIGN_OR_RETURN(target.source_digest, TreeDigest(env, tree));
      patches.push_back(
          {{"file", file}, {"bytes", stats->patch_bytes}, {"custom", target.ToCustom()}});
    }
  }
  return WriteFileDurably(env, JoinPath(spec.out_dir, kDescriptionFile),
                          nlohmann::json{{"patches", patches}}.dump(2) + "\n", 0644);
}

Status BuildImprovementFromDebs(Env* env, const RepoPaths& paths, BuildSpec spec,
                                const std::vector<std::string>& from_debs,
                                const std::string& to_deb) {
  if (from_debs.empty() || to_deb.empty()) {
    return Error(ErrorCode::kInvalidArgument, "build from packages needs --from-deb and --to-deb");
  }
  if (spec.out_dir.empty() || env->Stat(spec.out_dir).ok()) {
    return Error(ErrorCode::kAlreadyExists, spec.out_dir + " exists; build writes a new directory");
  }
  // Beside the result, so that the trees are on its file system, and gone afterwards.
  const std::string unpacked = spec.out_dir + ".unpacked";
  QP_RETURN_IF_ERROR(RemoveTree(env, unpacked));
  QP_RETURN_IF_ERROR(MakeDirs(env, unpacked, 0700));
  auto build = [&]() -> Status {
    QP_ASSIGN_OR_RETURN(DebPackage to, UnpackDeb(env, to_deb, JoinPath(unpacked, "to")));
    if (spec.component.empty()) spec.component = to.package;
    if (spec.platform.empty()) {
      spec.platform = PlatformOfDebianArchitecture(to.architecture);
      if (spec.platform.empty()) {
        return Error(ErrorCode::kInvalidArgument,
                     to_deb + " is for architecture \"" + to.architecture + "\": give --platform");
      }
    }
    spec.new_tree = to.tree;
    for (std::size_t i = 0; i < from_debs.size(); ++i) {
      QP_ASSIGN_OR_RETURN(DebPackage from,
                          UnpackDeb(env, from_debs[i], JoinPath(unpacked, std::to_string(i))));
      if (from.package != to.package || from.architecture != to.architecture) {
        return Error(ErrorCode::kInvalidArgument, from_debs[i] + " is " + from.package + " for " +
                                                      from.architecture + ", " + to_deb + " is " +
                                                      to.package + " for " + to.architecture);
      }
      if (from.version == to.version) {
        return Error(ErrorCode::kInvalidArgument,
                     from_debs[i] + " and " + to_deb + " are both version " + to.version);
      }
      if (i == 0) {
        spec.base = from.version;
        spec.base_tree = from.tree;
      } else {
        spec.other_bases.emplace_back(from.version, from.tree);
      }
    }
    return BuildImprovement(env, paths, std::move(spec));
  };
  Status built = build();
  Status removed = RemoveTree(env, unpacked);
  QP_RETURN_IF_ERROR(built);
  return removed;
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
    if (!out.patches.empty() &&
        (patch.target.id.component != out.patches.front().target.id.component ||
         patch.target.id.label != out.patches.front().target.id.label)) {
      return bad("patches of different improvements");
    }
    out.patches.push_back(std::move(patch));
  }
  return out;
}

std::vector<contract::ImprovementId> BuiltImprovement::Ids() const {
  std::vector<contract::ImprovementId> ids;
  for (const auto& p : patches) {
    if (std::find(ids.begin(), ids.end(), p.target.id) == ids.end()) ids.push_back(p.target.id);
  }
  return ids;
}

}  // namespace qp::publish
