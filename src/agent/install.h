// Download and installation of one improvement: the patch is downloaded (resumable, or
// taken from an offline bundle), verified against its signed length and hashes, handed to
// the store (atomic, health-checked, rolled back on failure), and the component's restart
// hooks run. It reports nothing itself: the agent turns the outcome into reports and
// status.
#pragma once

#include <string>
#include <vector>

#include "agent/improvements.h"
#include "agent/transport.h"
#include "core/env.h"
#include "store/store.h"
#include "tuf/updater.h"

namespace qp::agent {

struct FixOutcome {
  enum class Kind {
    kInstalled,
    kRolledBack,
    // The transfer did not complete: no answer, a server error, a missing file, this
    // device's disk full. Nothing says the fix is bad; a partial file is resumed later.
    kDownloadInterrupted,
    // The bytes served are not the signed ones (hash, length, size limit).
    kDownloadFailed,
    kInstallFailed,
  };
  Kind kind = Kind::kInstalled;
  // Why it failed or rolled back; when installed, a restart hook's error (if any).
  std::string message;
  Status status = OkStatus();                     // the failure, for the download and install kinds
  std::vector<store::ProcessRef> restart_needed;  // still running the old code
};

class Installer {
 public:
  // Patches are downloaded into `downloads_dir` (owned by the agent, 0700); one longer
  // than `max_patch_bytes` is refused, whatever its signed length.
  Installer(Env* env, Downloader* downloads, std::string downloads_dir,
            std::uint64_t max_patch_bytes);

  // The verified patch's path. A complete earlier download is reused; a partial one is
  // resumed; one that does not verify is deleted. `from_bundle`: the updater's fetcher is
  // an offline bundle, and the patch comes from it.
  Result<std::string> DownloadPatch(const Improvement& imp, tuf::Updater& updater,
                                    bool from_bundle);

  FixOutcome Install(store::Store& store, const std::string& component,
                     const store::TreeState& current, const Improvement& imp, tuf::Updater& updater,
                     bool from_bundle);

 private:
  Env* env_;
  Downloader* downloads_;
  std::string dir_;
  std::uint64_t max_patch_bytes_;
};

}  // namespace qp::agent
