#include "agent/agent_config.h"

#include <nlohmann/json.hpp>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include "core/ascii.h"
#include "core/durable_file.h"

namespace qp::agent {
namespace {

Error Bad(const std::string& file, const std::string& field, const std::string& problem) {
  return Error(ErrorCode::kInvalidArgument, file + ": " + field + ": " + problem);
}

Result<toml::table> ParseTomlFile(Env* env, const std::string& path) {
  QP_ASSIGN_OR_RETURN(auto bytes, ReadFileLimited(env, path, 64 * 1024));
  QP_RETURN_IF_ERROR(CheckAsciiText(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path));
  try {
    return toml::parse(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                       path);
  } catch (const toml::parse_error& e) {
    return Error(ErrorCode::kInvalidArgument, path + ":" + std::to_string(e.source().begin.line) +
                                                  ": " + std::string(e.description()));
  }
}

Result<std::chrono::seconds> Seconds(const toml::table& t, const char* key, const std::string& file,
                                     std::int64_t min, std::int64_t max,
                                     std::chrono::seconds fallback) {
  if (!t.contains(key)) return fallback;
  auto v = t[key].value<std::int64_t>();
  if (!v || *v < min || *v > max) {
    return Bad(file, key,
               "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return std::chrono::seconds(*v);
}

Result<std::uint64_t> Bytes(const toml::table& t, const char* key, const std::string& file,
                            std::uint64_t fallback) {
  if (!t.contains(key)) return fallback;
  auto v = t[key].value<std::int64_t>();
  constexpr std::int64_t kMax = std::int64_t{16} << 30;
  if (!v || *v < 1024 || *v > kMax) {
    return Bad(file, key, "expected a byte count from 1024 to " + std::to_string(kMax));
  }
  return static_cast<std::uint64_t>(*v);
}

Result<std::string> String(const toml::table& t, const char* key, const std::string& file,
                           const std::string& fallback) {
  if (!t.contains(key)) return fallback;
  auto v = t[key].value<std::string>();
  if (!v) return Bad(file, key, "expected a string");
  return *v;
}

// A URL or an array of at most 16, each http:// or https:// (trailing slashes dropped).
Result<std::vector<std::string>> Urls(const toml::table& t, const char* key,
                                      const std::string& file) {
  std::vector<std::string> out;
  if (!t.contains(key)) return out;
  auto one = [&](const toml::node& n) -> Status {
    auto v = n.value<std::string>();
    if (!v || (v->rfind("http://", 0) != 0 && v->rfind("https://", 0) != 0)) {
      return Bad(file, key, "an http:// or https:// URL is required");
    }
    std::string url = *v;
    while (!url.empty() && url.back() == '/') url.pop_back();
    out.push_back(url);
    return OkStatus();
  };
  if (const toml::array* a = t[key].as_array()) {
    if (a->empty() || a->size() > 16) return Bad(file, key, "expected 1 to 16 URLs");
    for (const auto& n : *a) QP_RETURN_IF_ERROR(one(n));
  } else {
    QP_RETURN_IF_ERROR(one(*t.get(key)));
  }
  return out;
}

}  // namespace

Result<AgentConfig> LoadAgentConfig(Env* env, const std::string& config_dir,
                                    const std::string& state_dir) {
  std::string file = JoinPath(config_dir, "agent.toml");
  QP_ASSIGN_OR_RETURN(toml::table t, ParseTomlFile(env, file));
  static const char* kKnown[] = {
      "repository_url",        "server_url",        "trusted_root",        "components_dir",
      "interval_seconds",      "jitter_seconds",    "max_backoff_seconds", "watch",
      "watch_timeout_seconds", "ca_file",           "admin_group",         "control_socket",
      "enrollment_token_file", "max_root_bytes",    "max_timestamp_bytes", "max_snapshot_bytes",
      "max_targets_bytes",     "max_rollout_bytes", "max_patch_bytes",     "install_cache_bytes"};
  for (const auto& [key, value] : t) {
    bool known = false;
    for (const char* k : kKnown) known = known || key.str() == k;
    if (!known) return Bad(file, std::string(key.str()), "unknown field");
  }
  AgentConfig c;
  c.config_dir = config_dir;
  c.state_dir = state_dir;
  QP_ASSIGN_OR_RETURN(c.repository_urls, Urls(t, "repository_url", file));
  if (c.repository_urls.empty()) {
    return Bad(file, "repository_url", "an http:// or https:// URL is required");
  }
  c.repository_url = c.repository_urls.front();
  QP_ASSIGN_OR_RETURN(c.server_urls, Urls(t, "server_url", file));
  if (!c.server_urls.empty()) c.server_url = c.server_urls.front();
  QP_ASSIGN_OR_RETURN(c.trusted_root,
                      String(t, "trusted_root", file, JoinPath(config_dir, "root.json")));
  QP_ASSIGN_OR_RETURN(c.components_dir,
                      String(t, "components_dir", file, JoinPath(config_dir, "components")));
  QP_ASSIGN_OR_RETURN(c.interval, Seconds(t, "interval_seconds", file, 1, 7 * 86400, c.interval));
  QP_ASSIGN_OR_RETURN(c.jitter, Seconds(t, "jitter_seconds", file, 0, 86400, c.jitter));
  QP_ASSIGN_OR_RETURN(c.max_backoff,
                      Seconds(t, "max_backoff_seconds", file, 1, 7 * 86400, c.max_backoff));
  QP_ASSIGN_OR_RETURN(c.watch_timeout,
                      Seconds(t, "watch_timeout_seconds", file, 1, 3600, c.watch_timeout));
  if (t.contains("watch")) {
    auto w = t["watch"].value<bool>();
    if (!w) return Bad(file, "watch", "expected true or false");
    c.watch = *w;
  }
  QP_ASSIGN_OR_RETURN(c.ca_file, String(t, "ca_file", file, ""));
  QP_ASSIGN_OR_RETURN(c.enrollment_token_file, String(t, "enrollment_token_file", file,
                                                      JoinPath(config_dir, "enrollment.token")));
  QP_ASSIGN_OR_RETURN(c.admin_group, String(t, "admin_group", file, ""));
  DownloadLimits& l = c.limits;
  QP_ASSIGN_OR_RETURN(l.root, Bytes(t, "max_root_bytes", file, l.root));
  QP_ASSIGN_OR_RETURN(l.timestamp, Bytes(t, "max_timestamp_bytes", file, l.timestamp));
  QP_ASSIGN_OR_RETURN(l.snapshot, Bytes(t, "max_snapshot_bytes", file, l.snapshot));
  QP_ASSIGN_OR_RETURN(l.targets, Bytes(t, "max_targets_bytes", file, l.targets));
  QP_ASSIGN_OR_RETURN(l.rollout, Bytes(t, "max_rollout_bytes", file, l.rollout));
  QP_ASSIGN_OR_RETURN(l.patch, Bytes(t, "max_patch_bytes", file, l.patch));
  QP_ASSIGN_OR_RETURN(c.control_socket, String(t, "control_socket", file, c.control_socket));
  QP_ASSIGN_OR_RETURN(c.install_cache_bytes,
                      Bytes(t, "install_cache_bytes", file, c.install_cache_bytes));
  return c;
}

Result<Policy> LoadPolicy(Env* env, const std::string& config_dir) {
  std::string file = JoinPath(config_dir, "policy.toml");
  Policy p;
  if (!env->Stat(file).ok()) return p;
  QP_ASSIGN_OR_RETURN(toml::table t, ParseTomlFile(env, file));
  p.present = true;
  for (const auto& [key, value] : t) {
    if (key.str() != "auto_install" && key.str() != "defer_hours") {
      return Bad(file, std::string(key.str()), "unknown field");
    }
  }
  if (t.contains("auto_install")) {
    auto v = t["auto_install"].value<bool>();
    if (!v) return Bad(file, "auto_install", "expected true or false");
    p.auto_install = *v;
  }
  if (t.contains("defer_hours")) {
    auto v = t["defer_hours"].value<std::int64_t>();
    if (!v || *v < 0 || *v > 72) return Bad(file, "defer_hours", "expected 0 to 72");
    p.defer = std::chrono::hours(*v);
  }
  return p;
}

Result<Settings> LoadSettings(Env* env, const std::string& state_dir) {
  Settings s;
  auto bytes = ReadFileLimited(env, JoinPath(state_dir, "settings.json"), 64 * 1024);
  if (!bytes.ok()) {
    if (bytes.error().code() == ErrorCode::kNotFound) return s;
    return bytes.error();
  }
  auto j = nlohmann::json::parse(bytes->begin(), bytes->end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(ErrorCode::kCorrupt, JoinPath(state_dir, "settings.json") + ": not valid JSON");
  }
  if (j.contains("auto_install") && j["auto_install"].is_boolean()) {
    s.auto_install = j["auto_install"].get<bool>();
  }
  return s;
}

Status SaveSettings(Env* env, const std::string& state_dir, const Settings& settings) {
  nlohmann::json j{{"auto_install", settings.auto_install}};
  return WriteFileDurably(env, JoinPath(state_dir, "settings.json"), j.dump(2) + "\n", 0644);
}

}  // namespace qp::agent
