// What dpkg knows of an installed package, asked through dpkg-query (dpkg's public
// interface to its database): its status, version, architecture and conffiles (-W), the
// paths it owns (-L) and their md5sums (--control-show). A component that is a Debian
// package (`package = "libssl3"`) takes its files and its base version from here.
// dpkg-query's output is parsed with limits all the same (fuzzed by dpkg_status_fuzzer):
// anything unexpected is an error, never a wrong answer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace qp::store {

struct DpkgStanza {
  std::string package;  // as dpkg names it: "libssl3:amd64" (Multi-Arch: same) or "openssl"
  std::string architecture, version, status;
  std::vector<std::string> conffiles;  // absolute paths
};

// The format given to `dpkg-query -W -f=...`: one stanza per package instance, its fields on
// a line, its conffiles on the next lines, "--" at the end.
inline constexpr const char* kDpkgQueryFormat =
    "${binary:Package}\\t${Architecture}\\t${Version}\\t${Status}\\n${Conffiles}\\n--\\n";

// dpkg-query's answer in that format. kCorrupt for anything else.
Result<std::vector<DpkgStanza>> ParseDpkgQueryStanzas(std::string_view text);

struct DpkgPackage {
  DpkgStanza stanza;
  std::vector<std::string> files;              // regular files, conffiles excluded, sorted
  std::map<std::string, std::string> md5sums;  // absolute path -> md5 (hex), as dpkg recorded it
};

// Asks dpkg-query about `package` ("libssl3", or "libssl3:amd64"), with `admin_dir` as its
// database ("": dpkg's own). Files are checked through `env` (only regular files count).
// Errors: kNotFound (dpkg does not know it), kInvalidArgument (installed for several
// architectures: the name must say which), kFailedPrecondition (known but not "install ok
// installed"), kCorrupt, kTooLarge, kIo (dpkg-query failed).
Result<DpkgPackage> QueryDpkgPackage(Env* env, const std::string& admin_dir,
                                     const std::string& package);

// The same for the stanza only (status and version), without the file list.
Result<DpkgStanza> QueryDpkgStanza(const std::string& admin_dir, const std::string& package);

// A file of a package whose content is not what dpkg recorded.
struct DpkgFileDifference {
  std::string path;
  std::string dpkg_md5;  // dpkg's record
  std::string live_md5;  // of the file now ("" when it cannot be read)
};

// The files of `package` whose MD5 differs from dpkg's md5sums, read through `env` (files
// dpkg has no sum for are left out). dpkg --verify compares the same sums.
Result<std::vector<DpkgFileDifference>> DifferencesFromDpkg(Env* env, const DpkgPackage& package);

}  // namespace qp::store
