// Building and applying .qpatch files for whole trees and for single files.
//
// Building pairs every new file with its best source in the old tree (the same path, an
// identical file elsewhere, or a predecessor whose name differs only in version digits,
// such as libfoo.so.1.2 -> libfoo.so.1.3) and keeps, per file, whichever is smaller: the
// delta or the whole compressed content.
//
// Applying reads the old tree, which must match the patch's source digest first, and
// writes the new one only through a TreeSink its caller provides (core/tree_writer.h):
// the patch engine itself creates, links and renames nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/result.h"
#include "core/tree_writer.h"
#include "delta/file_delta.h"
#include "delta/files_ahead.h"
#include "delta/qpatch_format.h"

namespace qp::delta {

struct BuildOptions {
  FileDiffOptions diff;
  // Called before each file is encoded: (path, index, count).
  std::function<void(const std::string&, std::size_t, std::size_t)> on_file;
};

struct BuildStats {
  std::size_t files_changed = 0, files_unchanged = 0, files_added = 0, paths_deleted = 0;
  std::uint64_t patch_bytes = 0;
};

// Builds a patch turning the tree at `old_root` into the tree at `new_root`, written
// durably to `patch_path` (which must not exist yet).
Result<BuildStats> BuildTreePatch(Env* env, const std::string& old_root,
                                  const std::string& new_root, const std::string& patch_path,
                                  const BuildOptions& options);
// The same for two single files.
Result<BuildStats> BuildFilePatch(Env* env, const std::string& old_file,
                                  const std::string& new_file, const std::string& patch_path,
                                  const BuildOptions& options);

struct ApplyOptions {
  // Unchanged files are hard-linked from the old tree instead of copied (same file system
  // only; falls back to copying). The store uses this; the CLI copies.
  bool link_unchanged = false;
  // Bytes of old files kept in memory between their hashing and the patch that reads them
  // (mapped where possible: see ApplyPatchTo).
  std::uint64_t hold_bytes = 32u << 20;
};

// Applies a patch whose header the caller decoded (once) from `patch` to the tree (or
// file) at `old_path`, writing every entry of the new one into `sink` (a file patch writes
// one file at path ""). Every file is checked against the manifest's size and SHA-256 as
// it is written. kVerificationFailed if the old tree is not the one the patch was made
// from; kCorrupt naming the record for a bad patch.
// Up to `hold_bytes` of the old files the patch reads are kept in memory as they are
// hashed, so that they come from disk once (HeldSources); 0 reads them again. Held
// sources also let delta records be made ahead, on a second thread (files_ahead.h).
Status ApplyPatchTo(Env* env, const std::string& old_path, RandomAccessFile& patch,
                    const PatchHeader& header, TreeSink& sink, std::uint64_t hold_bytes = 0);

// The tree a patch applies to, scanned by the caller: its manifest (hashed from what is
// there now), and where the bytes of each entry path are. For files that are not under one
// root (a component of files in shared directories).
struct SourceTree {
  std::string name;  // for messages: the old tree's path, or what the files are
  Manifest manifest;
  std::function<std::string(const std::string& entry_path)> locate;
  // Old files read into memory while the manifest was hashed: the patch reads these bytes
  // instead of the files (their hashes are the manifest's).
  const HeldSources* held = nullptr;
  // A lane already started (with the jobs that could begin before the scan), which the
  // applier completes and seals; else the applier starts its own.
  FilesAhead* ahead = nullptr;
};

// The old tree's entry paths that applying `header` reads: the sources of its delta, copy
// and mode records. What a HeldSources should want.
std::set<std::string> PatchSources(const PatchHeader& header);

// ApplyPatchTo from a SourceTree: the same checks (the source manifest's digest against the
// patch's source digest; each new entry as it is written), without scanning anything.
Status ApplyPatchFrom(Env* env, const SourceTree& source, RandomAccessFile& patch,
                      const PatchHeader& header, TreeSink& sink);

// The same from a patch file into a new tree or file at `new_path`, which must not exist,
// through WriteNewTree: on failure `new_path` does not exist and nothing is left behind.
Status ApplyPatch(Env* env, const std::string& old_path, const std::string& patch_path,
                  const std::string& new_path, const ApplyOptions& options);

}  // namespace qp::delta
