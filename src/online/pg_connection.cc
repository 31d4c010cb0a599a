#include "online/pg_connection.h"

namespace qp::online {

Result<std::unique_ptr<PgConnection>> PgConnection::Open(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    return Error(ErrorCode::kIo, "postgresql: connect: " + msg);
  }
  // Notices ("relation already exists, skipping") are not for the operator's terminal.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<PgConnection>(new PgConnection(conn));
}

PgConnection::~PgConnection() { PQfinish(conn_); }

Error PgConnection::Fail(const std::string& what) {
  std::string msg = PQerrorMessage(conn_);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return Error(ErrorCode::kIo, "postgresql: " + what + ": " + msg);
}

Result<PgResult> PgConnection::Check(PgResult r, const std::string& sql) {
  ExecStatusType st = PQresultStatus(r.get());
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  Error e = Fail(sql.substr(0, 40));
  if (PQstatus(conn_) == CONNECTION_BAD) {
    PQreset(conn_);
    prepared_.clear();  // a new session: its statements are gone
  }
  return e;
}

Result<PgResult> PgConnection::ExecPrepared(const std::string& sql,
                                            const std::vector<std::string>& args) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "qp_" + std::to_string(prepared_.size() + 1);
    QP_RETURN_IF_ERROR(Check(PgResult(PQprepare(conn_, name.c_str(), sql.c_str(),
                                                static_cast<int>(args.size()), nullptr)),
                             sql));
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> values;
  for (const auto& a : args) values.push_back(a.c_str());
  PgResult r(PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()),
                            values.data(), nullptr, nullptr, 0));
  return Check(std::move(r), sql);
}

Result<PgResult> PgConnection::Exec(const std::string& sql, const std::vector<std::string>& args) {
  std::vector<const char*> values;
  for (const auto& a : args) values.push_back(a.c_str());
  PgResult r(values.empty() ? PQexec(conn_, sql.c_str())
                            : PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                                           nullptr, values.data(), nullptr, nullptr, 0));
  return Check(std::move(r), sql);
}

Result<PgResult> PgConnection::ExecBinary(const std::string& sql,
                                          const std::vector<std::string_view>& args,
                                          const std::vector<bool>& binary) {
  std::vector<const char*> values;
  std::vector<int> lengths, formats;
  std::vector<std::string> text;  // text parameters need their NUL
  text.reserve(args.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    bool bin = i < binary.size() && binary[i];
    if (bin) {
      values.push_back(args[i].data());
    } else {
      text.emplace_back(args[i]);
      values.push_back(text.back().c_str());
    }
    lengths.push_back(static_cast<int>(args[i].size()));
    formats.push_back(bin ? 1 : 0);
  }
  PgResult r(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), lengths.data(), formats.data(), 0));
  return Check(std::move(r), sql);
}

Status PgConnection::CreateSchema(const std::string& sql) {
  QP_RETURN_IF_ERROR(Exec("SELECT pg_advisory_lock(7391)"));
  auto made = Exec(sql);
  (void)Exec("SELECT pg_advisory_unlock(7391)");
  if (!made.ok()) return made.error();
  return OkStatus();
}

Result<std::string> PgConnection::Bytea(PGresult* r, int row, int column) {
  std::size_t length = 0;
  unsigned char* raw =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r, row, column)), &length);
  if (raw == nullptr) return Error(ErrorCode::kCorrupt, "postgresql: an unreadable bytea value");
  std::string out(reinterpret_cast<const char*>(raw), length);
  PQfreemem(raw);
  return out;
}

std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string IntArray(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(values[i]);
  }
  return out + "}";
}

}  // namespace qp::online
