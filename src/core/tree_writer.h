// Writing a tree of files that appears whole or not at all. TreeSink is what a producer
// (the patch applier) writes into, so that it never creates, links or renames files
// itself; WriteNewTree is the sink that builds a fresh directory (or one file) beside its
// final path and renames it into place only when the producer finished without error.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/env.h"
#include "core/result.h"

namespace qp {

class TreeSink {
 public:
  virtual ~TreeSink() = default;
  // Paths are relative to the tree, parents before children. In a single-file tree the
  // only path is "" (the file itself).
  // A directory; its `mode` is applied when the tree is complete.
  virtual Status MakeDirectory(const std::string& path, std::uint32_t mode) = 0;
  virtual Status MakeSymlink(const std::string& path, const std::string& target) = 0;
  // Reuses the unchanged file `existing` (an absolute path elsewhere) as `path` without
  // copying it (a hard link), when the sink may; false: the producer writes the content.
  virtual Result<bool> LinkFile(const std::string& path, const std::string& existing) = 0;
  // A new regular file (mode 0600 until SetFileMode); the producer appends, syncs and
  // closes it.
  virtual Result<std::unique_ptr<WritableFile>> NewFile(const std::string& path) = 0;
  virtual Status SetFileMode(const std::string& path, std::uint32_t mode) = 0;
};

struct NewTreeOptions {
  bool single_file = false;  // the tree is one file, at path ""
  bool link_files = false;   // LinkFile may hard-link (same file system only)
};

// Runs `produce` on a sink writing into `final_path.qp-partial-PID`, then makes it durable
// (files by the producer, directories here: synced, given their modes deepest first) and
// renames it to `final_path`, which must not exist. On any error nothing is left behind
// (except after a simulated crash, kCrashed, which leaves the disk as a crash would).
Status WriteNewTree(Env* env, const std::string& final_path, const NewTreeOptions& options,
                    const std::function<Status(TreeSink&)>& produce);

// The prefix of what an interrupted WriteNewTree(final_path) leaves, to clean it up.
std::string PartialTreePrefix(const std::string& final_path);

// Removes a tree through the env (files, symlinks, then directories). Ok if absent.
Status RemoveTree(Env* env, const std::string& path);

}  // namespace qp
