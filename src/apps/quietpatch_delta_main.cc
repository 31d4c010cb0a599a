// quietpatch-delta: build, apply and inspect .qpatch files for single files or whole trees.
//
//   quietpatch-delta diff OLD NEW PATCH     (files or directories; PATCH must not exist)
//   quietpatch-delta apply OLD PATCH NEW    (NEW must not exist; nothing is left on failure)
//   quietpatch-delta info PATCH [--old OLD]  (with OLD: each delta's predictions, replayed)
//
// Exit status: 0 on success, 1 on failure (with the reason on stderr), 2 on bad usage.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "core/env.h"
#include "core/hash.h"
#include "delta/file_delta_format.h"
#include "delta/tree_patch.h"

namespace {

using qp::Env;

// Progress on a terminal only: one line rewritten in place.
class Progress {
 public:
  Progress() : tty_(::isatty(2) != 0) {}
  void File(const std::string& path, std::size_t index, std::size_t count) {
    current_ = path;
    if (tty_) std::fprintf(stderr, "\r\033[K[%zu/%zu] %s", index, count, path.c_str());
  }
  void Bytes(std::uint64_t done, std::uint64_t total) {
    if (tty_ && total > 0) {
      std::fprintf(stderr, "\r\033[K%s: matching %3d%%", current_.c_str(),
                   static_cast<int>(done * 100 / total));
    }
  }
  void Done() {
    if (tty_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  bool tty_;
  std::string current_;
};

int Fail(const qp::Error& e) {
  std::cerr << "quietpatch-delta: " << e.ToString() << "\n";
  return 1;
}

int Diff(const std::string& old_path, const std::string& new_path, const std::string& patch,
         int threads, bool no_transform) {
  Env* env = Env::Default();
  auto old_info = env->Stat(old_path);
  auto new_info = env->Stat(new_path);
  if (!old_info.ok()) return Fail(old_info.error());
  if (!new_info.ok()) return Fail(new_info.error());
  bool dirs = old_info->type == qp::FileType::kDirectory;
  if (dirs != (new_info->type == qp::FileType::kDirectory)) {
    return Fail(qp::Error(qp::ErrorCode::kInvalidArgument,
                          "OLD and NEW must both be files or both be directories"));
  }
  Progress progress;
  qp::delta::BuildOptions options;
  options.diff.threads = threads;
  options.diff.executable_transform = !no_transform;
  options.on_file = [&](const std::string& p, std::size_t i, std::size_t n) {
    progress.File(p, i, n);
  };
  options.diff.progress = [&](std::uint64_t d, std::uint64_t t) { progress.Bytes(d, t); };
  auto start = std::chrono::steady_clock::now();
  auto stats = dirs ? qp::delta::BuildTreePatch(env, old_path, new_path, patch, options)
                    : qp::delta::BuildFilePatch(env, old_path, new_path, patch, options);
  progress.Done();
  if (!stats.ok()) return Fail(stats.error());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: %llu bytes (%zu changed, %zu added, %zu unchanged, %zu deleted) in %.1f s\n",
              patch.c_str(), static_cast<unsigned long long>(stats->patch_bytes),
              stats->files_changed, stats->files_added, stats->files_unchanged,
              stats->paths_deleted, secs);
  return 0;
}

int Apply(const std::string& old_path, const std::string& patch, const std::string& new_path) {
  qp::Status s = qp::delta::ApplyPatch(Env::Default(), old_path, patch, new_path, {});
  if (!s.ok()) return Fail(s.error());
  std::printf("%s: written and verified\n", new_path.c_str());
  return 0;
}

// Replays one file delta against its source (writing nothing) and prints how its
// predictions went, by kind of reference.
void PrintPredictions(qp::RandomAccessFile& patch, std::uint64_t offset, std::uint64_t length,
                      const std::string& source) {
  auto old_file = Env::Default()->NewRandomAccessFile(source);
  if (!old_file.ok()) {
    std::printf("      predictions: %s\n", old_file.error().ToString().c_str());
    return;
  }
  class Discard final : public qp::WritableFile {
   public:
    qp::Status Append(std::span<const std::uint8_t>) override { return qp::OkStatus(); }
    qp::Status Sync() override { return qp::OkStatus(); }
    qp::Status Close() override { return qp::OkStatus(); }
  } discard;
  auto r = qp::delta::ApplyFileDelta(**old_file, patch, offset, length, discard);
  if (!r.ok()) {
    std::printf("      predictions: %s\n", r.error().ToString().c_str());
    return;
  }
  std::printf("      %-20s %10s %10s\n", "predictions", "hit", "missed");
  for (int k = 0; k < qp::delta::kRefKinds; ++k) {
    auto hit = r->prediction.hit[static_cast<std::size_t>(k)];
    auto miss = r->prediction.miss[static_cast<std::size_t>(k)];
    if (hit + miss == 0) continue;
    std::printf("      %-20s %10llu %10llu\n",
                qp::delta::RefKindName(static_cast<qp::delta::RefKind>(k)),
                static_cast<unsigned long long>(hit), static_cast<unsigned long long>(miss));
  }
}

int Info(const std::string& patch_path, const std::string& old_path) {
  auto file = Env::Default()->NewRandomAccessFile(patch_path);
  if (!file.ok()) return Fail(file.error());
  auto h = qp::delta::DecodePatchHeader(**file);
  if (!h.ok()) return Fail(h.error());
  std::printf("format version   %u\n", h->version);
  std::printf("kind             %s\n", h->kind == qp::delta::PatchKind::kTree ? "tree" : "file");
  std::printf("size             %llu bytes (header %llu)\n",
              static_cast<unsigned long long>((*file)->Size()),
              static_cast<unsigned long long>(h->payload_start));
  std::printf("source digest    %s\n", qp::HexEncode(h->source_digest).c_str());
  std::printf("result digest    %s\n", qp::HexEncode(h->result_digest).c_str());
  std::uint64_t total = 0;
  for (const auto& e : h->manifest) total += e.type == qp::delta::EntryType::kFile ? e.size : 0;
  std::printf("result tree      %zu entries, %llu bytes of files\n", h->manifest.size(),
              static_cast<unsigned long long>(total));
  std::printf("records          %zu\n", h->records.size());
  for (const auto& r : h->records) {
    std::string from = r.source.empty() ? "" : " <- " + r.source;
    std::printf("  %-8s %10llu  %s%s\n", std::string(qp::delta::RecordOpName(r.op)).c_str(),
                static_cast<unsigned long long>(r.payload_length), r.path.c_str(), from.c_str());
    if (r.op != qp::delta::RecordOp::kDelta && r.op != qp::delta::RecordOp::kGzipDelta) continue;
    // How the delta is made: its transform and its streams (compressed / raw bytes).
    auto d = qp::delta::ReadFileDeltaHeader(**file, h->payload_start + r.payload_offset,
                                            r.payload_length);
    if (!d.ok()) {
      std::printf("      unreadable delta: %s\n", d.error().ToString().c_str());
      continue;
    }
    static const char* kCodecs[] = {"raw", "zstd", "lzma2"};
    std::printf("      transform %s", qp::delta::TransformName(d->transform));
    if (qp::delta::HasTableMask(d->transform)) std::printf(" (tables %#x)", d->tables);
    std::printf(", %llu controls%s, %s differences\n", static_cast<unsigned long long>(d->controls),
                (d->layout & qp::delta::kLayoutColumns) != 0 ? " (by column)" : "",
                qp::delta::IsDense(d->layout) ? "dense" : "sparse");
    for (const auto& st : d->streams) {
      auto codec = static_cast<unsigned>(st.codec);
      std::printf("      %-13s %10llu of %10llu bytes (%s)\n", st.name,
                  static_cast<unsigned long long>(st.comp_len),
                  static_cast<unsigned long long>(st.raw_len), codec < 3 ? kCodecs[codec] : "?");
    }
    if (!old_path.empty() && r.op == qp::delta::RecordOp::kDelta && d->transform != 0) {
      const bool tree = h->kind == qp::delta::PatchKind::kTree;
      PrintPredictions(**file, h->payload_start + r.payload_offset, r.payload_length,
                       tree ? old_path + "/" + r.source : old_path);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    CLI::App app{"quietpatch-delta: binary patches for files and directory trees"};
    app.require_subcommand(1);
    std::string a, b, c;
    int threads = 2;
    bool no_transform = false;
    auto* diff = app.add_subcommand("diff", "build PATCH that turns OLD into NEW");
    diff->add_option("OLD", a, "old file or directory")->required();
    diff->add_option("NEW", b, "new file or directory")->required();
    diff->add_option("PATCH", c, "patch file to create")->required();
    diff->add_option("--threads", threads, "matching threads")->check(CLI::Range(1, 64));
    diff->add_flag("--no-exe-transform", no_transform,
                   "disable ELF address prediction (x86-64, AArch64)");
    auto* apply = app.add_subcommand("apply", "apply PATCH to OLD, creating NEW");
    apply->add_option("OLD", a, "old file or directory")->required();
    apply->add_option("PATCH", b, "patch file")->required();
    apply->add_option("NEW", c, "new path (must not exist)")->required();
    auto* info = app.add_subcommand("info", "show what PATCH changes");
    info->add_option("PATCH", a, "patch file")->required();
    info->add_option("--old", b, "the old file or tree: replay each delta's predictions");
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      int rc = app.exit(e);
      return rc == 0 ? 0 : 2;
    }
    if (*diff) return Diff(a, b, c, threads, no_transform);
    if (*apply) return Apply(a, b, c);
    return Info(a, b);
  } catch (const std::exception& e) {
    std::cerr << "quietpatch-delta: " << e.what() << "\n";
    return 1;
  }
}
