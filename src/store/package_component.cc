#include "store/package_component.h"

#include "core/platform.h"
#include "store/dpkg_database.h"

namespace qp::store {

ComponentSet ResolvePackageComponents(Env* env, const std::string& admin_dir,
                                      std::vector<ComponentConfig> components) {
  ComponentSet set;
  for (auto& c : components) {
    if (c.package.empty()) {
      set.active.push_back(std::move(c));
      continue;
    }
    auto package = QueryDpkgPackage(env, admin_dir, c.package);
    if (!package.ok()) {
      set.inactive.push_back({c.name, package.error().message()});
      continue;
    }
    if (c.platform.empty()) {
      c.platform = PlatformOfDebianArchitecture(package->stanza.architecture);
      if (c.platform.empty()) {
        set.inactive.push_back({c.name, c.package + " is for architecture \"" +
                                            package->stanza.architecture + "\": set platform in " +
                                            c.source_file});
        continue;
      }
    }
    if (package->files.empty()) {
      set.inactive.push_back({c.name, c.package + " owns no regular file outside its conffiles"});
      continue;
    }
    c.files = std::move(package->files);
    set.active.push_back(std::move(c));
  }
  return set;
}

Result<std::string> InstalledPackageVersion(const std::string& admin_dir,
                                            const std::string& package) {
  QP_ASSIGN_OR_RETURN(auto stanza, QueryDpkgStanza(admin_dir, package));
  return stanza.version;
}

}  // namespace qp::store
