#include "server/server_config.h"

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include "core/ascii.h"
#include "core/durable_file.h"

namespace qp::server {

Status ParseListen(const std::string& listen, ServerConfig* config) {
  std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos)
    return Error(ErrorCode::kInvalidArgument, "listen: expected host:port");
  try {
    int port = std::stoi(listen.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    config->listen_address = listen.substr(0, colon);
    config->listen_port = port;
  } catch (...) {
    return Error(ErrorCode::kInvalidArgument, "listen: bad port in \"" + listen + "\"");
  }
  return OkStatus();
}

Result<ServerConfig> LoadServerConfig(Env* env, const std::string& path) {
  ServerConfig c;
  if (path.empty()) return c;
  QP_ASSIGN_OR_RETURN(auto bytes, ReadFileLimited(env, path, 64 * 1024));
  QP_RETURN_IF_ERROR(CheckAsciiText(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path));
  toml::table t;
  try {
    t = toml::parse(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                    path);
  } catch (const toml::parse_error& e) {
    return Error(ErrorCode::kInvalidArgument, path + ":" + std::to_string(e.source().begin.line) +
                                                  ": " + std::string(e.description()));
  }
  auto bad = [&](const std::string& field, const std::string& what) {
    return Error(ErrorCode::kInvalidArgument, path + ": " + field + ": " + what);
  };
  auto str = [&](const char* key, std::string* out) -> Status {
    if (!t.contains(key)) return OkStatus();
    auto v = t[key].value<std::string>();
    if (!v) return bad(key, "expected a string");
    *out = *v;
    return OkStatus();
  };
  auto num = [&](const char* key, int* out, int lo, int hi) -> Status {
    if (!t.contains(key)) return OkStatus();
    auto v = t[key].value<std::int64_t>();
    if (!v || *v < lo || *v > hi)
      return bad(key,
                 "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    *out = static_cast<int>(*v);
    return OkStatus();
  };
  std::string listen;
  QP_RETURN_IF_ERROR(str("listen", &listen));
  if (!listen.empty()) QP_RETURN_IF_ERROR(ParseListen(listen, &c));
  QP_RETURN_IF_ERROR(str("repo_dir", &c.repo_dir));
  QP_RETURN_IF_ERROR(str("keys_dir", &c.keys_dir));
  QP_RETURN_IF_ERROR(str("admin_token_file", &c.admin_token_file));
  QP_RETURN_IF_ERROR(str("viewer_token_file", &c.viewer_token_file));
  QP_RETURN_IF_ERROR(str("database", &c.database));
  QP_RETURN_IF_ERROR(str("instance_name", &c.instance_name));
  if (t.contains("shared_repository")) {
    auto v = t["shared_repository"].value<bool>();
    if (!v) return bad("shared_repository", "expected true or false");
    c.shared_repository = *v;
  }
  QP_RETURN_IF_ERROR(str("audit_log", &c.audit_log));
  QP_RETURN_IF_ERROR(str("dashboard_dir", &c.dashboard_dir));
  QP_RETURN_IF_ERROR(str("tls_cert", &c.tls_cert));
  QP_RETURN_IF_ERROR(str("tls_key", &c.tls_key));
  QP_RETURN_IF_ERROR(num("threads", &c.threads, 1, 64));
  QP_RETURN_IF_ERROR(num("worker_threads", &c.worker_threads, 1, 256));
  QP_RETURN_IF_ERROR(num("report_rate_per_minute", &c.report_rate_per_minute, 1, 100000));
  QP_RETURN_IF_ERROR(num("timestamp_resign_hours", &c.timestamp_resign_hours, 1, 23));
  QP_RETURN_IF_ERROR(num("request_timeout_seconds", &c.request_timeout_seconds, 1, 300));
  QP_RETURN_IF_ERROR(num("watch_per_address", &c.watch_per_address, 1, 100000));
  QP_RETURN_IF_ERROR(num("watch_per_device", &c.watch_per_device, 1, 100));
  if (const toml::table* h = t["auto_halt"].as_table()) {
    if (auto v = (*h)["min_reports"].value<std::int64_t>())
      c.auto_halt_min_reports = static_cast<int>(*v);
    if (auto v = (*h)["max_failure_percent"].value<double>()) c.auto_halt_max_failure_percent = *v;
  }
  return c;
}

}  // namespace qp::server
