// Components that are Debian packages (`package = "libssl3"`): their files, and their
// platform when the file does not name one, come from dpkg's database when the agent loads
// its configuration (at start, on SIGHUP, and after every dpkg run through the apt hook),
// and their base version from it at every reconcile, so that an upgrade by apt supersedes
// the improvement.
#pragma once

#include <string>
#include <vector>

#include "core/env.h"
#include "core/result.h"
#include "store/component_config.h"

namespace qp::store {

struct InactiveComponent {
  std::string name;
  std::string reason;  // "libssl3 is not wholly installed (dpkg status: ...)"
};

struct ComponentSet {
  std::vector<ComponentConfig> active;
  std::vector<InactiveComponent> inactive;
};

// Fills the files (the package's regular files, conffiles excluded) and, when empty, the
// platform of every component with a package, from dpkg-query (`admin_dir` "" is dpkg's
// own database). A component whose package is missing, not
// "install ok installed", of an unknown architecture or without files becomes inactive,
// with the reason; the others are active as they are.
ComponentSet ResolvePackageComponents(Env* env, const std::string& admin_dir,
                                      std::vector<ComponentConfig> components);

// The version dpkg records for `package`, which must be wholly installed (errors as
// QueryDpkgStanza's). `admin_dir` "" is dpkg's own database.
Result<std::string> InstalledPackageVersion(const std::string& admin_dir,
                                            const std::string& package);

}  // namespace qp::store
