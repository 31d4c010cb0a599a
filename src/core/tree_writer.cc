#include "core/tree_writer.h"

#include <unistd.h>

#include <utility>
#include <vector>

#include "core/durable_file.h"

namespace qp {
namespace {

class NewTreeSink final : public TreeSink {
 public:
  NewTreeSink(Env* env, std::string root, const NewTreeOptions& options)
      : env_(env), root_(std::move(root)), options_(options) {}

  Status MakeDirectory(const std::string& path, std::uint32_t mode) override {
    if (options_.single_file) return Error(ErrorCode::kCorrupt, "a directory in a single file");
    QP_RETURN_IF_ERROR(env_->MakeDir(Dest(path), 0700));
    dirs_.emplace_back(path, mode);
    return OkStatus();
  }
  Status MakeSymlink(const std::string& path, const std::string& target) override {
    return env_->Symlink(target, Dest(path));
  }
  Result<bool> LinkFile(const std::string& path, const std::string& existing) override {
    return options_.link_files && env_->Link(existing, Dest(path)).ok();
  }
  Result<std::unique_ptr<WritableFile>> NewFile(const std::string& path) override {
    return env_->NewWritableFile(Dest(path), CreateMode::kExclusive, 0600);
  }
  Status SetFileMode(const std::string& path, std::uint32_t mode) override {
    return env_->Chmod(Dest(path), mode);
  }

  // Directories: durable contents, then their final modes, deepest first.
  Status Finish() {
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      QP_RETURN_IF_ERROR(env_->SyncDir(Dest(it->first)));
      QP_RETURN_IF_ERROR(env_->Chmod(Dest(it->first), it->second));
    }
    if (!options_.single_file) QP_RETURN_IF_ERROR(env_->SyncDir(root_));
    return OkStatus();
  }

 private:
  std::string Dest(const std::string& path) const {
    return path.empty() ? root_ : JoinPath(root_, path);
  }

  Env* env_;
  std::string root_;
  NewTreeOptions options_;
  std::vector<std::pair<std::string, std::uint32_t>> dirs_;
};

}  // namespace

std::string PartialTreePrefix(const std::string& final_path) { return final_path + ".qp-partial-"; }

Status WriteNewTree(Env* env, const std::string& final_path, const NewTreeOptions& options,
                    const std::function<Status(TreeSink&)>& produce) {
  if (env->Stat(final_path).ok()) {
    return Error(ErrorCode::kAlreadyExists, final_path + " exists; a new tree is written only");
  }
  std::string tmp = PartialTreePrefix(final_path) + std::to_string(::getpid());
  NewTreeSink sink(env, tmp, options);
  auto build = [&]() -> Status {
    if (!options.single_file) QP_RETURN_IF_ERROR(env->MakeDir(tmp, 0700));
    QP_RETURN_IF_ERROR(produce(sink));
    QP_RETURN_IF_ERROR(sink.Finish());
    return RenameDurably(env, tmp, final_path);
  };
  Status s = build();
  if (!s.ok() && s.error().code() != ErrorCode::kCrashed) (void)RemoveTree(env, tmp);
  return s;
}

Status RemoveTree(Env* env, const std::string& path) {
  auto info = env->Stat(path);
  if (!info.ok())
    return info.error().code() == ErrorCode::kNotFound ? OkStatus() : Status(info.error());
  if (info->type != FileType::kDirectory) return env->Unlink(path);
  QP_ASSIGN_OR_RETURN(auto names, env->ListDir(path));
  for (const auto& n : names) QP_RETURN_IF_ERROR(RemoveTree(env, JoinPath(path, n)));
  return env->RemoveDir(path);
}

}  // namespace qp
