#include "store/component_config.h"

#include <algorithm>
#include <set>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include "core/ascii.h"
#include "core/durable_file.h"

namespace qp::store {
namespace {

Error Bad(const std::string& file, const std::string& field, const std::string& problem) {
  return Error(ErrorCode::kInvalidArgument, file + ": " + field + ": " + problem);
}

Result<std::vector<std::string>> StringArray(const toml::node* node, const std::string& file,
                                             const std::string& field, bool allow_empty) {
  const toml::array* arr = node != nullptr ? node->as_array() : nullptr;
  if (arr == nullptr) return Bad(file, field, "expected an array of strings");
  std::vector<std::string> out;
  for (const auto& item : *arr) {
    auto s = item.value<std::string>();
    if (!s) return Bad(file, field, "expected an array of strings");
    out.push_back(*s);
  }
  if (!allow_empty && out.empty()) return Bad(file, field, "must not be empty");
  return out;
}

bool IsAbsoluteClean(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.size() > 4096) return false;
  if (path.find("/../") != std::string::npos || path.find("/./") != std::string::npos ||
      path.find("//") != std::string::npos) {
    return false;
  }
  return !(path.size() > 1 && path.back() == '/') && path.find('\0') == std::string::npos &&
         !path.ends_with("/..") && !path.ends_with("/.");
}

Status ParseBaseVersion(const toml::table& base, const std::string& f, BaseVersionSource* out) {
  int sources = static_cast<int>(base.contains("literal")) +
                static_cast<int>(base.contains("file")) +
                static_cast<int>(base.contains("command"));
  if (sources != 1) {
    return Bad(f, "base_version", "exactly one of literal, file, command must be set");
  }
  if (auto lit = base["literal"].value<std::string>()) {
    if (lit->empty()) return Bad(f, "base_version.literal", "must not be empty");
    out->kind = BaseVersionSource::Kind::kLiteral;
    out->literal = *lit;
  } else if (base.contains("literal")) {
    return Bad(f, "base_version.literal", "expected a string");
  } else if (base.contains("file")) {
    auto file = base["file"].value<std::string>();
    if (!file || !IsAbsoluteClean(*file)) {
      return Bad(f, "base_version.file", "expected an absolute path");
    }
    out->kind = BaseVersionSource::Kind::kFile;
    out->file = *file;
  } else {
    out->kind = BaseVersionSource::Kind::kCommand;
    QP_ASSIGN_OR_RETURN(out->command,
                        StringArray(base.get("command"), f, "base_version.command", false));
  }

  return OkStatus();
}

}  // namespace

bool IsValidPackageName(std::string_view package) {
  std::string_view name = package.substr(0, package.find(':'));
  auto is = [](char c, std::string_view extra) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || extra.find(c) != std::string::npos;
  };
  if (name.size() < 2 || name.size() > 128 || !is(name[0], "")) return false;
  if (!std::all_of(name.begin(), name.end(), [&](char c) { return is(c, "+-."); })) return false;
  if (name.size() == package.size()) return true;
  std::string_view arch = package.substr(name.size() + 1);
  return !arch.empty() && arch.size() <= 32 &&
         std::all_of(arch.begin(), arch.end(), [&](char c) { return is(c, "-"); });
}

bool IsValidComponentName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' ||
           c == '-';
  });
}

Result<ComponentConfig> ParseComponentConfig(std::string_view toml_text,
                                             const std::string& file_name) {
  QP_RETURN_IF_ERROR(CheckAsciiText(toml_text, file_name));
  toml::table table;
  try {
    table = toml::parse(toml_text, file_name);
  } catch (const toml::parse_error& e) {
    return Error(ErrorCode::kInvalidArgument, file_name + ":" +
                                                  std::to_string(e.source().begin.line) + ": " +
                                                  std::string(e.description()));
  }
  const std::string& f = file_name;
  ComponentConfig c;
  c.source_file = file_name;
  static const std::set<std::string> kKnown = {
      "name", "platform", "root", "files", "package", "base_version", "health_check", "restart"};
  for (const auto& [key, value] : table) {
    if (kKnown.count(std::string(key.str())) == 0) {
      return Bad(f, std::string(key.str()), "unknown field");
    }
  }
  auto name = table["name"].value<std::string>();
  if (!name) return Bad(f, "name", "missing (a string)");
  if (!IsValidComponentName(*name)) {
    return Bad(f, "name", "\"" + *name + "\" is not [a-z0-9][a-z0-9._+-]* (at most 64)");
  }
  c.name = *name;
  const bool has_root = table.contains("root");
  const bool has_files = table.contains("files");
  const bool has_package = table.contains("package");
  auto platform = table["platform"].value<std::string>();
  if (table.contains("platform") && (!platform || platform->empty())) {
    return Bad(f, "platform", "expected a string (e.g. \"linux-x86_64\")");
  }
  if (!platform && !has_package) return Bad(f, "platform", "missing (e.g. \"linux-x86_64\")");
  if (platform) c.platform = *platform;

  if (static_cast<int>(has_root) + static_cast<int>(has_files) + static_cast<int>(has_package) !=
      1) {
    return Bad(f, "root/files/package", "exactly one of them must be set");
  }
  if (has_package) {
    auto package = table["package"].value<std::string>();
    if (!package || !IsValidPackageName(*package)) {
      return Bad(f, "package",
                 "expected a Debian package name, optionally with its architecture "
                 "(\"libssl3\", \"libssl3:amd64\")");
    }
    if (table.contains("base_version")) {
      return Bad(f, "base_version", "not with package (the version comes from dpkg)");
    }
    c.kind = RootKind::kSharedFiles;
    c.package = *package;
    c.base_version.kind = BaseVersionSource::Kind::kPackage;
  } else if (has_root) {
    auto root = table["root"].value<std::string>();
    if (!root || !IsAbsoluteClean(*root) || *root == "/") {
      return Bad(f, "root", "must be an absolute directory path other than /");
    }
    c.kind = RootKind::kOwnedDirectory;
    c.root = *root;
  } else {
    QP_ASSIGN_OR_RETURN(c.files, StringArray(table.get("files"), f, "files", false));
    for (const auto& path : c.files) {
      if (!IsAbsoluteClean(path))
        return Bad(f, "files", "\"" + path + "\" is not an absolute path");
    }
    std::sort(c.files.begin(), c.files.end());
    if (std::adjacent_find(c.files.begin(), c.files.end()) != c.files.end()) {
      return Bad(f, "files", "a file is listed twice");
    }
    c.kind = RootKind::kSharedFiles;
  }

  const toml::table* base = table["base_version"].as_table();
  if (has_package) {
    // The base version is dpkg's.
  } else if (base == nullptr) {
    return Bad(f, "base_version", "missing table [base_version]");
  } else {
    QP_RETURN_IF_ERROR(ParseBaseVersion(*base, f, &c.base_version));
  }
  if (const toml::table* health = table["health_check"].as_table()) {
    QP_ASSIGN_OR_RETURN(c.health_check,
                        StringArray(health->get("command"), f, "health_check.command", false));
    if (health->contains("timeout_seconds")) {
      auto t = (*health)["timeout_seconds"].value<std::int64_t>();
      if (!t || *t < 1 || *t > 3600) {
        return Bad(f, "health_check.timeout_seconds", "expected an integer from 1 to 3600");
      }
      c.health_timeout = std::chrono::seconds(*t);
    }
  } else if (table.contains("health_check")) {
    return Bad(f, "health_check", "expected a table");
  }

  if (const toml::table* restart = table["restart"].as_table()) {
    const toml::array* hooks = (*restart)["hooks"].as_array();
    if (hooks == nullptr) return Bad(f, "restart.hooks", "expected an array of commands");
    for (const auto& hook : *hooks) {
      QP_ASSIGN_OR_RETURN(auto argv, StringArray(&hook, f, "restart.hooks", false));
      c.restart_hooks.push_back(std::move(argv));
    }
  } else if (table.contains("restart")) {
    return Bad(f, "restart", "expected a table");
  }
  return c;
}

Result<std::vector<ComponentConfig>> LoadComponentConfigs(Env* env, const std::string& dir) {
  QP_ASSIGN_OR_RETURN(auto names, env->ListDir(dir));
  std::vector<ComponentConfig> out;
  std::set<std::string> seen;
  for (const auto& name : names) {
    if (!name.ends_with(".toml")) continue;
    std::string path = JoinPath(dir, name);
    QP_ASSIGN_OR_RETURN(auto bytes, ReadFileLimited(env, path, 64 * 1024));
    QP_ASSIGN_OR_RETURN(
        ComponentConfig c,
        ParseComponentConfig(
            std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path));
    if (!seen.insert(c.name).second) {
      return Bad(path, "name", "component \"" + c.name + "\" is configured twice");
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> WritablePaths(const std::vector<ComponentConfig>& components) {
  std::set<std::string> paths;
  for (const auto& c : components) {
    auto parent = [](const std::string& path) {
      auto slash = path.find_last_of('/');
      return slash == 0 ? std::string("/") : path.substr(0, slash);
    };
    if (c.kind == RootKind::kOwnedDirectory) {
      paths.insert(parent(c.root));  // <root>.qp-staging and <root>.qp-previous beside it
      continue;
    }
    for (const auto& file : c.files) paths.insert(parent(file));
    // dpkg's frontend lock, taken while a package's files are written (opened read-write).
    if (!c.package.empty()) paths.insert(std::string(kDpkgFrontendLock));
  }
  std::vector<std::string> out;
  for (const auto& path : paths) {
    // Sorted, so a parent comes before what is below it.
    bool covered = std::any_of(out.begin(), out.end(), [&](const std::string& kept) {
      return kept == "/" || path.starts_with(kept + "/");
    });
    if (!covered) out.push_back(path);
  }
  return out;
}

}  // namespace qp::store
