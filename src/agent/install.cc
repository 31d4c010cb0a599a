#include "agent/install.h"

#include "core/durable_file.h"

namespace qp::agent {
namespace {

// The downloaded patch against the signed length and hashes (tuf's check, streamed).
Status VerifyFile(Env* env, const std::string& path, const tuf::TargetFile& file) {
  QP_ASSIGN_OR_RETURN(auto f, env->NewRandomAccessFile(path));
  return tuf::VerifyFileLengthAndHashes(*f, file.length, file.hashes, "patch");
}

}  // namespace

Installer::Installer(Env* env, Downloader* downloads, std::string downloads_dir,
                     std::uint64_t max_patch_bytes)
    : env_(env),
      downloads_(downloads),
      dir_(std::move(downloads_dir)),
      max_patch_bytes_(max_patch_bytes) {}

Result<std::string> Installer::DownloadPatch(const Improvement& imp, tuf::Updater& updater,
                                             bool from_bundle) {
  auto sha = imp.file.hashes.find("sha256");
  if (sha == imp.file.hashes.end() || sha->second.empty()) {
    return Error(ErrorCode::kUnsupported, "improvement without a sha256 hash");
  }
  QP_RETURN_IF_ERROR(
      tuf::Updater::DownloadCap("patch " + imp.target_path, imp.file.length, max_patch_bytes_));
  std::string done = JoinPath(dir_, sha->second + ".qpatch");
  if (env_->Stat(done).ok() && VerifyFile(env_, done, imp.file).ok()) return done;
  tuf::TargetInfo info{imp.target_path, imp.file, "improvements"};
  if (from_bundle) {
    // From the bundle: checked against the signed length and hashes in memory.
    QP_ASSIGN_OR_RETURN(auto bytes, updater.FetchTarget(info));
    QP_RETURN_IF_ERROR(WriteFileDurably(env_, done, bytes, 0600));
    return done;
  }
  std::string partial = JoinPath(dir_, sha->second + ".partial");
  auto got = downloads_->Download(env_, updater.TargetUrl(info), partial, imp.file.length);
  if (!got.ok()) return got.error();
  if (Status s = VerifyFile(env_, partial, imp.file); !s.ok()) {
    (void)env_->Unlink(partial);  // a complete file that does not verify is never resumed
    return s.error();
  }
  QP_RETURN_IF_ERROR(RenameDurably(env_, partial, done));
  return done;
}

FixOutcome Installer::Install(store::Store& store, const std::string& component,
                              const store::TreeState& current, const Improvement& imp,
                              tuf::Updater& updater, bool from_bundle) {
  FixOutcome out;
  auto patch = DownloadPatch(imp, updater, from_bundle);
  if (!patch.ok()) {
    const ErrorCode code = patch.error().code();
    const bool interrupted =
        code == ErrorCode::kIo || code == ErrorCode::kNotFound || code == ErrorCode::kNoSpace;
    out.kind =
        interrupted ? FixOutcome::Kind::kDownloadInterrupted : FixOutcome::Kind::kDownloadFailed;
    out.message = "download of (" + imp.id.label + ") failed: " + patch.error().ToString();
    out.status = patch.error();
    return out;
  }
  store::InstallRequest request{*patch, current, store::TreeState{imp.id.label, imp.result_digest}};
  auto installed = store.Install(component, request);
  if (!installed.ok()) {
    out.kind = FixOutcome::Kind::kInstallFailed;
    out.message = "install of (" + imp.id.label + ") failed: " + installed.error().ToString();
    out.status = installed.error();
    return out;
  }
  if (installed->rolled_back) {
    out.kind = FixOutcome::Kind::kRolledBack;
    out.message = installed->reason;
    return out;
  }
  (void)env_->Unlink(*patch);
  if (Status s = store.RunRestartHooks(component); !s.ok()) out.message = s.error().ToString();
  auto stale = store.ProcessesNeedingRestart(component);
  if (stale.ok()) out.restart_needed = *stale;
  return out;
}

}  // namespace qp::agent
