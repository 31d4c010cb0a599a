// Component configuration: one TOML file per component in the configuration directory.
//
//   name = "openssl"                      # [a-z0-9][a-z0-9._+-]*
//   platform = "linux-x86_64"
//   root = "/opt/openssl"                 # a directory the component owns, or:
//   files = ["/usr/lib/x86_64-linux-gnu/libssl.so.3", ...]   # files in shared directories, or:
//   package = "libssl3"                   # a Debian package: its files (conffiles excepted)
//                                         # and base version come from dpkg's database, and
//                                         # platform may be left out (from its architecture)
//
//   [base_version]                        # exactly one of (not with package):
//   literal = "3.0.17-1~deb12u2"
//   file = "/opt/openssl/VERSION"         # first line, trimmed
//   command = ["dpkg-query", "-W", "-f=${Version}", "libssl3"]
//
//   [health_check]                        # optional
//   command = ["/opt/openssl/bin/openssl", "version"]
//   timeout_seconds = 30
//
//   [restart]                             # optional
//   hooks = [["systemctl", "try-restart", "nginx"]]
//
// Errors name the file and the field.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace qp::store {

enum class RootKind { kOwnedDirectory, kSharedFiles };

struct BaseVersionSource {
  // kPackage: the Version dpkg records for the component's package, read at each reconcile.
  enum class Kind { kLiteral, kFile, kCommand, kPackage } kind = Kind::kLiteral;
  std::string literal;
  std::string file;
  std::vector<std::string> command;
};

struct ComponentConfig {
  std::string name;
  std::string platform;
  RootKind kind = RootKind::kOwnedDirectory;
  std::string root;                // kOwnedDirectory: absolute directory
  std::vector<std::string> files;  // kSharedFiles: absolute paths, sorted
  // A Debian package ("libssl3" or "libssl3:amd64"): files (and platform, when not given)
  // are filled from dpkg's database by ResolvePackageComponents (package_component.h).
  std::string package;
  BaseVersionSource base_version;
  std::vector<std::string> health_check;  // empty: none
  std::chrono::seconds health_timeout{30};
  std::vector<std::vector<std::string>> restart_hooks;
  std::string source_file;  // where it was read from
};

// Parses one component file. kInvalidArgument "<file>: <field>: <problem>".
Result<ComponentConfig> ParseComponentConfig(std::string_view toml_text,
                                             const std::string& file_name);

// Every *.toml file of `dir`, sorted by name. Two components with one name are an error.
Result<std::vector<ComponentConfig>> LoadComponentConfigs(Env* env, const std::string& dir);

// What installing into these components writes: the directory that holds each owned root
// (the new tree is staged as <root>.qp-staging beside it and swapped in by renames), and the
// directory of each shared file (its .qp-new sibling is made and renamed there). Sorted, each once;
// a path below another listed one is left out. The agent's unit gets them as ReadWritePaths=.
// With a Debian package among them, dpkg's frontend lock file too (the store opens it to
// lock it while it writes the package's files).
inline constexpr std::string_view kDpkgFrontendLock = "/var/lib/dpkg/lock-frontend";

std::vector<std::string> WritablePaths(const std::vector<ComponentConfig>& components);

// Whether `package` is a Debian package name, optionally with ":architecture".
bool IsValidPackageName(std::string_view package);

// Whether `name` is a valid component name.
bool IsValidComponentName(std::string_view name);

}  // namespace qp::store
