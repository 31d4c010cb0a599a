// What dpkg knows of an installed package, read from its database (/var/lib/dpkg) through
// Env: its status and version (status), the files it owns (info/<package>.list), their
// md5sums (info/<package>.md5sums) and its conffiles. A component that is a Debian package
// (`package = "libssl3"`) takes its files and its base version from here.
// The database is root's, but it is parsed with limits all the same (fuzzed by
// dpkg_status_fuzzer): a damaged status file gives an error, never a wrong answer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace qp::store {

inline constexpr const char* kDpkgAdminDir = "/var/lib/dpkg";

struct DpkgStanza {
  std::string package, architecture, version, status;
  std::vector<std::string> conffiles;  // absolute paths
};

// The stanza of `package` ("libssl3", or qualified "libssl3:amd64") in the text of dpkg's
// status file. kNotFound when dpkg does not know it (or knows it only for another
// architecture); kCorrupt for a malformed file; kInvalidArgument for two stanzas that match
// an unqualified name (a Multi-Arch package installed for several architectures).
Result<DpkgStanza> FindDpkgStanza(std::string_view status_text, std::string_view package);

struct DpkgPackage {
  DpkgStanza stanza;
  std::vector<std::string> files;              // regular files it owns, conffiles excluded, sorted
  std::map<std::string, std::string> md5sums;  // absolute path -> md5 (hex), as dpkg recorded it
  bool installed() const { return stanza.status == "install ok installed"; }
};

// Reads `package` from the dpkg database under `admin_dir`. Errors: kNotFound (not known to
// dpkg), kFailedPrecondition (known but not "install ok installed": half-installed,
// removed with its configuration left, ...), kCorrupt, kTooLarge, kIo.
Result<DpkgPackage> ReadDpkgPackage(Env* env, const std::string& admin_dir,
                                    std::string_view package);

// The platform quietpatch names for a Debian architecture ("amd64" -> "linux-x86_64");
// "" for one it does not know.
std::string PlatformOfDebianArchitecture(std::string_view architecture);

}  // namespace qp::store
