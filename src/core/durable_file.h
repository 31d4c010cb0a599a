// The one way quietpatch writes state that must survive a crash: write a temporary file
// beside the target, fsync it, rename it over the target, fsync the directory. A reader
// sees either the old file or the new one, never a torn one, and after the call returns ok
// the new one survives a power cut.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"

namespace qp {

// Atomically replaces `path` with `data` (created with `permissions`). On any failure the
// old file is intact and the temporary file is removed (best effort: after a simulated
// crash nothing more runs). The temporary name is "<path>.qp-tmp-<n>", never ending in
// the target's extension.
Status WriteFileDurably(Env* env, const std::string& path, std::span<const std::uint8_t> data,
                        mode_t permissions = 0644);
Status WriteFileDurably(Env* env, const std::string& path, std::string_view data,
                        mode_t permissions = 0644);

// Renames `from` over `to` and fsyncs the destination directory (and the source's, when it
// differs). For callers that produced `from` themselves and synced its data.
Status RenameDurably(Env* env, const std::string& from, const std::string& to);

// Creates `path` exclusively with `data`, fsyncs it and its directory. kAlreadyExists if
// the path exists (nothing is changed then).
Status CreateFileExclusively(Env* env, const std::string& path, std::span<const std::uint8_t> data,
                             mode_t permissions = 0644);

// Reads a whole regular file; kTooLarge (before reading) if it is bigger than max_bytes.
Result<std::vector<std::uint8_t>> ReadFileLimited(Env* env, const std::string& path,
                                                  std::uint64_t max_bytes);

// Creates a directory and its missing parents (like mkdir -p); ok if it exists.
Status MakeDirs(Env* env, const std::string& path, mode_t permissions = 0755);

}  // namespace qp
