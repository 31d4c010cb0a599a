// Store benchmark driver (run by bench/store_bench.sh): installs one improvement into a
// copy of OLD_TREE through the store (stage beside, verify, swap, keep the rollback copy)
// and, as the baseline in the same process, copies NEW_TREE plainly. Prints wall time and
// the disk space each consumed (statvfs before/after), and their ratios; and the bytes the
// install read through the store's Env (hashing, patching, copying) against the component's
// size.
//
//   store_bench OLD_TREE NEW_TREE PATCH WORK_DIR
#include <sys/resource.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/hash.h"
#include "core/read_counting_env.h"
#include "delta/tree_manifest.h"
#include "store/store.h"

namespace fs = std::filesystem;

namespace {

std::int64_t UsedBytes(const std::string& path) {
  struct statvfs s {};
  ::statvfs(path.c_str(), &s);
  return static_cast<std::int64_t>(s.f_blocks - s.f_bfree) * static_cast<std::int64_t>(s.f_frsize);
}

// CPU seconds (user + system) of `u`.
double CpuSeconds(const rusage& u) {
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

rusage Usage(int who) {
  rusage u{};
  ::getrusage(who, &u);
  return u;
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string Digest(const std::string& tree) {
  auto m = qp::delta::ScanTree(qp::Env::Default(), tree);
  return m.ok() ? qp::HexEncode(qp::delta::ManifestDigest(*m)) : "";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: store_bench OLD_TREE NEW_TREE PATCH WORK_DIR\n");
    return 2;
  }
  std::string old_tree = argv[1], new_tree = argv[2], patch = argv[3], work = argv[4];
  std::string root = work + "/live/comp";
  fs::create_directories(work + "/live");
  fs::copy(old_tree, root, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::create_directories(work + "/state");
  ::sync();

  qp::store::ComponentConfig config;
  config.name = "comp";
  config.platform = "linux-x86_64";
  config.root = root;
  config.base_version.literal = "1";
  qp::ReadCountingEnv counting(qp::Env::Default());
  qp::store::StoreOptions options;
  options.state_dir = work + "/state";
  options.env = &counting;
  qp::store::Store store(options, {config});
  auto status = store.Reconcile("comp");
  if (!status.ok()) return 1;
  std::string new_digest = Digest(new_tree);
  ::sync();

  std::int64_t used0 = UsedBytes(work);
  counting.Reset();
  auto t0 = std::chrono::steady_clock::now();
  const rusage self0 = Usage(RUSAGE_SELF), children0 = Usage(RUSAGE_CHILDREN);
  auto r = store.Install("comp", {patch, status->current, {"a", new_digest}});
  double install_s = Since(t0);
  const rusage self1 = Usage(RUSAGE_SELF), children1 = Usage(RUSAGE_CHILDREN);
  double install_cpu_s = CpuSeconds(self1) - CpuSeconds(self0);
  if (!r.ok() || !r->committed) {
    std::fprintf(stderr, "install failed: %s\n",
                 r.ok() ? r->reason.c_str() : r.error().ToString().c_str());
    return 1;
  }
  const std::uint64_t install_read = counting.TotalBytesRead();
  ::sync();
  std::int64_t used1 = UsedBytes(work);
  if (Digest(root) != new_digest) return 1;

  auto t1 = std::chrono::steady_clock::now();
  fs::copy(new_tree, work + "/plain-copy",
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  ::sync();
  double copy_s = Since(t1);
  std::int64_t used2 = UsedBytes(work);

  double install_mb = static_cast<double>(used1 - used0) / 1e6;
  double copy_mb = static_cast<double>(used2 - used1) / 1e6;
  std::printf(
      "install (stage, verify, swap, keep rollback copy, fsync): %.3f s (%.3f s CPU), %.1f MB "
      "extra "
      "disk\n",
      install_s, install_cpu_s, install_mb);
  // Where the time goes besides this process: gzip -9n recompressing changelogs (a child
  // process), and fresh memory (each page's first touch is a fault, dear on some VMs).
  std::printf(
      "install CPU in child processes (gzip -9n): %.3f s; page faults in this process: %ld\n",
      CpuSeconds(children1) - CpuSeconds(children0), self1.ru_minflt - self0.ru_minflt);
  std::printf("baseline plain copy of the new files (+ sync): %.2f s, %.1f MB\n", copy_s, copy_mb);
  std::printf("ratio install/copy: time %.2f, disk %.2f\n", install_s / copy_s,
              copy_mb > 0 ? install_mb / copy_mb : 0.0);
  std::uint64_t component = 0;
  for (const auto& e : fs::recursive_directory_iterator(old_tree)) {
    if (e.is_regular_file() && !e.is_symlink()) component += e.file_size();
  }
  std::printf(
      "bytes the install read (goal: at most 2x the component): %.1f MB, %.2fx the component's "
      "%.1f MB\n",
      static_cast<double>(install_read) / 1e6,
      component > 0 ? static_cast<double>(install_read) / static_cast<double>(component) : 0.0,
      static_cast<double>(component) / 1e6);
  // Where the reads went: the files read more than once their size, largest excess first.
  std::vector<std::pair<double, std::string>> excess;
  for (const auto& path : counting.PathsRead()) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    const double bytes = static_cast<double>(counting.BytesRead(path));
    if (ec || size == 0) {
      excess.emplace_back(bytes, path + " (gone or empty now)");
    } else if (bytes > static_cast<double>(size)) {
      excess.emplace_back(bytes - static_cast<double>(size),
                          path + " (" +
                              std::to_string(bytes / static_cast<double>(size)).substr(0, 4) +
                              "x its size)");
    }
  }
  std::sort(excess.rbegin(), excess.rend());
  for (std::size_t i = 0; i < excess.size() && i < 4; ++i) {
    std::printf("  read beyond once: %.2f MB %s\n", excess[i].first / 1e6,
                excess[i].second.c_str());
  }
  return 0;
}
