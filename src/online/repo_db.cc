#include "online/repo_db.h"

#include <algorithm>
#include <map>

#include "contract/timestamp_peek.h"
#include "core/durable_file.h"
#include "core/hash.h"

namespace qp::online {
namespace {

constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS repo_files (
  path TEXT PRIMARY KEY, content BYTEA NOT NULL, sha256 TEXT NOT NULL,
  generation BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS repo_files_generation ON repo_files (generation);
CREATE TABLE IF NOT EXISTS repo_generations (
  generation BIGINT PRIMARY KEY, timestamp_version BIGINT NOT NULL UNIQUE,
  timestamp_sha256 TEXT NOT NULL, pushed_by TEXT NOT NULL, pushed_at TIMESTAMPTZ NOT NULL);
)SQL";

// Serialises pushes (a transaction-scoped advisory lock).
constexpr const char* kPushLock = "SELECT pg_advisory_xact_lock(7392)";

const std::string kTimestamp = "metadata/timestamp.json";
const std::string kRoot = "metadata/root.json";

bool Mutable(const std::string& path) { return path == kTimestamp || path == kRoot; }

// Files under metadata/ and targets/ of `dir`, relative ("metadata/1.root.json").
Status ListRepoFiles(Env* env, const std::string& dir, const std::string& relative,
                     std::vector<std::string>* out) {
  auto names = env->ListDir(JoinPath(dir, relative));
  if (!names.ok()) {
    if (names.error().code() == ErrorCode::kNotFound) return OkStatus();
    return names.error();
  }
  for (const auto& name : *names) {
    if (name.find(".qp-tmp-") != std::string::npos) continue;  // a write in progress
    std::string rel = relative + "/" + name;
    QP_ASSIGN_OR_RETURN(FileInfo info, env->Stat(JoinPath(dir, rel)));
    if (info.type == FileType::kDirectory) {
      QP_RETURN_IF_ERROR(ListRepoFiles(env, dir, rel, out));
    } else if (info.type == FileType::kRegular) {
      out->push_back(rel);
    }
  }
  return OkStatus();
}

Result<RepoGeneration> ReadGeneration(PgConnection* conn) {
  QP_ASSIGN_OR_RETURN(auto r, conn->Exec("SELECT COALESCE(MAX(generation), 0), "
                                         "COALESCE(MAX(timestamp_version), 0) FROM "
                                         "repo_generations"));
  RepoGeneration g;
  g.number = std::atoll(PQgetvalue(r.get(), 0, 0));
  g.timestamp_version = std::strtoull(PQgetvalue(r.get(), 0, 1), nullptr, 10);
  return g;
}

// Order of a pull's writes: targets, versioned metadata, root.json, timestamp.json.
int WriteRank(const std::string& path) {
  if (path == kTimestamp) return 3;
  if (path == kRoot) return 2;
  return path.rfind("targets/", 0) == 0 ? 0 : 1;
}

}  // namespace

bool IsRepoFilePath(const std::string& path) {
  if (path.rfind("metadata/", 0) != 0 && path.rfind("targets/", 0) != 0) return false;
  if (path.size() > 1024 || path.back() == '/') return false;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view part(path.data() + start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return path.find('\0') == std::string::npos;
}

Result<std::unique_ptr<RepoDb>> RepoDb::Open(const std::string& conninfo) {
  QP_ASSIGN_OR_RETURN(auto conn, PgConnection::Open(conninfo));
  QP_RETURN_IF_ERROR(conn->CreateSchema(kSchema));
  return std::unique_ptr<RepoDb>(new RepoDb(std::move(conn)));
}

Result<RepoGeneration> RepoDb::Current() { return ReadGeneration(conn_.get()); }

Result<RepoGeneration> RepoDb::Push(Env* env, const std::string& repo_dir, std::int64_t based_on,
                                    const std::string& who) {
  auto timestamp_bytes =
      ReadFileLimited(env, JoinPath(repo_dir, kTimestamp), contract::kMaxTimestampBytes);
  if (!timestamp_bytes.ok()) return timestamp_bytes.error();
  QP_ASSIGN_OR_RETURN(auto timestamp, contract::PeekTimestamp(*timestamp_bytes));
  std::vector<std::string> local;
  QP_RETURN_IF_ERROR(ListRepoFiles(env, repo_dir, "metadata", &local));
  QP_RETURN_IF_ERROR(ListRepoFiles(env, repo_dir, "targets", &local));

  QP_RETURN_IF_ERROR(conn_->Exec("BEGIN"));
  auto pushed = [&]() -> Result<RepoGeneration> {
    QP_RETURN_IF_ERROR(conn_->Exec(kPushLock));
    QP_ASSIGN_OR_RETURN(RepoGeneration now, ReadGeneration(conn_.get()));
    if (now.number != based_on) {
      return Error(ErrorCode::kFailedPrecondition,
                   "the repository in the database is at generation " + std::to_string(now.number) +
                       ", not " + std::to_string(based_on) +
                       " as this change assumed: pull, then make the change again");
    }
    QP_ASSIGN_OR_RETURN(auto known, conn_->Exec("SELECT path, sha256 FROM repo_files"));
    std::map<std::string, std::string> in_db;
    for (int i = 0; i < PQntuples(known.get()); ++i) {
      in_db.emplace(PQgetvalue(known.get(), i, 0), PQgetvalue(known.get(), i, 1));
    }
    // What differs from the database. A target's name is its hash: the same name is the
    // same file. A versioned metadata file never changes once pushed: one that differs
    // means this copy was changed from another generation.
    std::vector<std::pair<std::string, std::string>> uploads;  // path, SHA-256
    for (const auto& path : local) {
      auto it = in_db.find(path);
      if (it != in_db.end() && path.rfind("targets/", 0) == 0) continue;
      QP_ASSIGN_OR_RETURN(auto bytes,
                          ReadFileLimited(env, JoinPath(repo_dir, path), kMaxRepoFileBytes));
      std::string sha = HexEncode(Sha256Of(bytes));
      if (it != in_db.end() && it->second == sha) continue;
      if (it != in_db.end() && !Mutable(path)) {
        return Error(ErrorCode::kFailedPrecondition,
                     path +
                         " differs from the database's copy, which never changes: pull, "
                         "then make the change again");
      }
      uploads.emplace_back(path, sha);
    }
    if (uploads.empty()) return now;  // nothing a device could see changed
    if (timestamp.version <= now.timestamp_version) {
      return Error(ErrorCode::kFailedPrecondition,
                   "timestamp version " + std::to_string(timestamp.version) +
                       " is not above version " + std::to_string(now.timestamp_version) +
                       ", already in the database: a version is never signed twice");
    }
    const std::string generation = std::to_string(based_on + 1);
    for (const auto& [path, sha] : uploads) {
      QP_ASSIGN_OR_RETURN(auto bytes,
                          ReadFileLimited(env, JoinPath(repo_dir, path), kMaxRepoFileBytes));
      if (HexEncode(Sha256Of(bytes)) != sha) {
        return Error(ErrorCode::kFailedPrecondition, path + " changed while it was pushed");
      }
      std::string_view content(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      QP_RETURN_IF_ERROR(conn_->ExecBinary(
          "INSERT INTO repo_files (path, content, sha256, generation) VALUES ($1, $2, $3, $4) "
          "ON CONFLICT (path) DO UPDATE SET content = excluded.content, sha256 = "
          "excluded.sha256, generation = excluded.generation",
          {path, content, sha, generation}, {false, true, false, false}));
    }
    QP_RETURN_IF_ERROR(conn_->Exec("INSERT INTO repo_generations VALUES ($1, $2, $3, $4, now())",
                                   {generation, std::to_string(timestamp.version),
                                    HexEncode(Sha256Of(*timestamp_bytes)), who}));
    QP_RETURN_IF_ERROR(
        conn_->Exec(std::string("SELECT pg_notify('") + kRepoChannel + "', $1)", {generation}));
    return RepoGeneration{based_on + 1, timestamp.version};
  }();
  if (!pushed.ok()) {
    (void)conn_->Exec("ROLLBACK");
    return pushed.error();
  }
  QP_RETURN_IF_ERROR(conn_->Exec("COMMIT"));
  return pushed;
}

Result<RepoGeneration> RepoDb::Pull(Env* env, const std::string& repo_dir, std::int64_t have) {
  // One snapshot: the generation and the files that make it up. A target the directory
  // already holds at its size is not fetched again (its name is its hash; a full pull
  // after a restart costs a listing and the metadata, not the patches). Metadata is
  // always written: a copy may hold a version of its own that was never pushed.
  QP_RETURN_IF_ERROR(conn_->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  auto read = [&]() -> Result<std::pair<RepoGeneration, PgResult>> {
    QP_ASSIGN_OR_RETURN(RepoGeneration now, ReadGeneration(conn_.get()));
    QP_ASSIGN_OR_RETURN(auto listed,
                        conn_->Exec("SELECT path, sha256, octet_length(content) FROM repo_files "
                                    "WHERE generation > $1",
                                    {std::to_string(have)}));
    std::vector<std::string> fetch;
    for (int i = 0; i < PQntuples(listed.get()); ++i) {
      std::string path = PQgetvalue(listed.get(), i, 0);
      if (!IsRepoFilePath(path)) {
        return Error(ErrorCode::kCorrupt, "the database lists a repository file at \"" +
                                              path.substr(0, 200) + "\": refused");
      }
      if (path.rfind("targets/", 0) == 0) {  // named by its hash: that size is that file
        auto info = env->Stat(JoinPath(repo_dir, path));
        if (info.ok() && info->type == FileType::kRegular &&
            info->size == std::strtoull(PQgetvalue(listed.get(), i, 2), nullptr, 10)) {
          continue;
        }
      }
      fetch.push_back(path);
    }
    QP_ASSIGN_OR_RETURN(auto files, conn_->Exec("SELECT path, content, sha256 FROM repo_files "
                                                "WHERE path = ANY($1::text[])",
                                                {TextArray(fetch)}));
    return std::make_pair(now, std::move(files));
  }();
  (void)conn_->Exec("COMMIT");
  if (!read.ok()) return read.error();
  // No structured binding: a lambda below refers to `files` (clang refuses that in C++20).
  const RepoGeneration now = read->first;
  PgResult& files = read->second;
  std::vector<int> order;
  for (int i = 0; i < PQntuples(files.get()); ++i) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return WriteRank(PQgetvalue(files.get(), a, 0)) < WriteRank(PQgetvalue(files.get(), b, 0));
  });
  for (int i : order) {
    std::string path = PQgetvalue(files.get(), i, 0);
    QP_ASSIGN_OR_RETURN(std::string content, PgConnection::Bytea(files.get(), i, 1));
    if (HexEncode(Sha256Of(content)) != PQgetvalue(files.get(), i, 2)) {
      return Error(ErrorCode::kCorrupt,
                   "the database's copy of " + path + " does not match its hash");
    }
    std::string full = JoinPath(repo_dir, path);
    QP_RETURN_IF_ERROR(MakeDirs(env, DirName(full)));
    QP_RETURN_IF_ERROR(WriteFileDurably(env, full, content));
  }
  return now;
}

Result<std::vector<std::pair<std::uint64_t, std::string>>> RepoDb::TimestampVersions() {
  QP_ASSIGN_OR_RETURN(auto r, conn_->Exec("SELECT timestamp_version, timestamp_sha256 FROM "
                                          "repo_generations ORDER BY generation"));
  std::vector<std::pair<std::uint64_t, std::string>> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    out.emplace_back(std::strtoull(PQgetvalue(r.get(), i, 0), nullptr, 10),
                     PQgetvalue(r.get(), i, 1));
  }
  return out;
}

}  // namespace qp::online
