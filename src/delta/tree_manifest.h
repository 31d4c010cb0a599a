// The manifest of a component tree: every path with its type, permission bits, size and
// SHA-256, sorted bytewise by path, and the tree digest computed over it. A patch carries
// the manifest of the tree it produces and the digest of the tree it applies to.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/hash.h"
#include "core/result.h"

namespace qp::delta {

enum class EntryType : std::uint8_t { kFile = 1, kDirectory = 2, kSymlink = 3 };

struct ManifestEntry {
  std::string path;  // relative, '/'-separated; "." for the single file of a file patch
  EntryType type = EntryType::kFile;
  std::uint32_t mode = 0;  // permission bits (07777)
  std::uint64_t size = 0;  // file: bytes; symlink: target length; directory: 0
  Sha256Digest sha256{};   // file: content; symlink: target; directory: zero
};

using Manifest = std::vector<ManifestEntry>;

// Limits on what a manifest read from an untrusted patch may hold.
inline constexpr std::size_t kMaxPathLength = 4096;
inline constexpr std::size_t kMaxEntries = 1'000'000;

// Checks that `path` is a safe relative path: non-empty, no leading '/', no empty, "." or
// ".." component, no NUL or other control character, at most kMaxPathLength bytes. kCorrupt naming
// the path otherwise.
Status ValidateRelativePath(const std::string& path);

// Scans the tree under `root` (files, directories, symlinks; anything else is an error),
// hashing every file. The root itself is not an entry. Returns entries sorted by path.
Result<Manifest> ScanTree(Env* env, const std::string& root);

// A manifest for a single file (one entry with path ".").
Result<Manifest> ScanSingleFile(Env* env, const std::string& path);

// The file system path of manifest entry `path` under `root` ("." is the root itself).
std::string ResolveEntryPath(const std::string& root, const std::string& path);

// SHA-256 over the canonical encoding of the manifest (see docs/patch-format.md).
Sha256Digest ManifestDigest(const Manifest& manifest);

// Streams a file's SHA-256 and size through the env.
Result<std::pair<std::uint64_t, Sha256Digest>> HashFile(Env* env, const std::string& path);

}  // namespace qp::delta
