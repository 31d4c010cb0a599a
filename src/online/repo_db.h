// The repository kept in PostgreSQL, for a fleet service of several instances
// (docs/server.md, "Several instances"). Every file of the repository directory is a row
// of `repo_files`; the database is the one copy that counts, and each instance (and the
// publisher) works on a local directory it pulls from it. A push is a generation: the
// files that changed since the generation it was based on, with exactly one new
// timestamp version, written in one transaction and announced with NOTIFY. Fencing: a
// push based on a generation that is no longer the newest is refused, and so is a
// timestamp version that is not above every version pushed before (`repo_generations`
// keeps them, unique), so no version is ever signed twice or goes backwards, whoever
// pushes and however a failover interleaves. Immutable files (versioned metadata,
// hash-named targets) never change once pushed. Not thread-safe: one caller at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/env.h"
#include "core/result.h"
#include "online/pg_connection.h"

namespace qp::online {

// The channel every instance listens on; the payload is the new generation.
inline constexpr const char* kRepoChannel = "quietpatch_repo";

// The largest file a pull writes (a patch of a browser engine fits).
inline constexpr std::uint64_t kMaxRepoFileBytes = 1ull << 30;

struct RepoGeneration {
  std::int64_t number = 0;  // 0: nothing pushed yet
  std::uint64_t timestamp_version = 0;
};

class RepoDb {
 public:
  // Connects and creates the tables (under an advisory lock) if they are missing.
  static Result<std::unique_ptr<RepoDb>> Open(const std::string& conninfo);

  Result<RepoGeneration> Current();

  // Pushes the files of `repo_dir` (metadata/, targets/) that differ from the database's
  // as generation `based_on` + 1, by `who` (recorded). kFailedPrecondition, and nothing
  // written, when the database is past `based_on` (another push came first: pull, redo
  // the change, push again), when a versioned metadata file differs from the database's
  // copy, or when something differs and the local timestamp's version is not above every
  // version pushed before. A copy that differs in nothing is pushed as nothing (the
  // generation stays).
  Result<RepoGeneration> Push(Env* env, const std::string& repo_dir, std::int64_t based_on,
                              const std::string& who);

  // Writes into `repo_dir` every file changed after generation `have`: targets first,
  // then metadata, root.json and timestamp.json last, each atomically and durably, so a
  // reader of the directory never sees metadata whose targets are missing. Paths are
  // checked (relative, under metadata/ or targets/, no "..") before anything is written.
  Result<RepoGeneration> Pull(Env* env, const std::string& repo_dir, std::int64_t have);

  // Every timestamp version pushed, with its SHA-256 (hex), oldest first.
  Result<std::vector<std::pair<std::uint64_t, std::string>>> TimestampVersions();

  PgConnection* connection() { return conn_.get(); }

 private:
  explicit RepoDb(std::unique_ptr<PgConnection> conn) : conn_(std::move(conn)) {}
  std::unique_ptr<PgConnection> conn_;
};

// Whether `path` (relative to a repository directory) may be written by a pull.
bool IsRepoFilePath(const std::string& path);

}  // namespace qp::online
