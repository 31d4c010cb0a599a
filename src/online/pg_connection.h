// A libpq connection with the calls the server makes of PostgreSQL: statements with text
// parameters (or binary ones, for bytea), errors that name the statement, and a reset after
// the connection broke (the next call runs on a new one). Not thread-safe: its owner locks.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace qp::online {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

class PgConnection {
 public:
  // kIo naming what failed when the database does not answer.
  static Result<std::unique_ptr<PgConnection>> Open(const std::string& conninfo);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Text parameters; without any, PQexec (which runs several statements: a schema).
  Result<PgResult> Exec(const std::string& sql, const std::vector<std::string>& args = {});
  // Exec() of a statement prepared on this connection at its first use (planned once, not
  // at every call: for a hot statement). Prepared again after the connection is reset.
  Result<PgResult> ExecPrepared(const std::string& sql, const std::vector<std::string>& args);
  // Parameters as given, binary where `binary[i]` (bytea), results in text.
  Result<PgResult> ExecBinary(const std::string& sql, const std::vector<std::string_view>& args,
                              const std::vector<bool>& binary);
  // Runs a schema's statements (CREATE ... IF NOT EXISTS) under an advisory lock, so that
  // instances starting at once do not race to create the same tables.
  Status CreateSchema(const std::string& sql);
  // The value of a bytea column of a text-format result.
  static Result<std::string> Bytea(PGresult* r, int row, int column);

  PGconn* raw() { return conn_; }
  Error Fail(const std::string& what);

 private:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  Result<PgResult> Check(PgResult r, const std::string& sql);
  PGconn* conn_;
  std::map<std::string, std::string> prepared_;  // statement -> its name on this connection
};

// Literals for $n::text[] and $n::bigint[] parameters.
std::string TextArray(const std::vector<std::string>& values);
std::string IntArray(const std::vector<std::int64_t>& values);

}  // namespace qp::online
