// Components that are Debian packages: dpkg's database read (status, file lists, md5sums,
// conffiles), and the components resolved from it, against a database written by the test.
#include "store/dpkg_database.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include "core/durable_file.h"
#include "core/test_dir.h"
#include "store/component_config.h"
#include "store/package_component.h"

namespace qp::store {
namespace {

constexpr const char* kStatus = R"(Package: openssl
Status: install ok installed
Architecture: amd64
Version: 3.0.17-1~deb12u2
Conffiles:
 /etc/ssl/openssl.cnf 0123456789abcdef0123456789abcdef
Description: toolkit
 with a continuation line

Package: libssl3
Status: install ok installed
Multi-Arch: same
Architecture: amd64
Version: 3.0.17-1~deb12u2

Package: libssl3
Status: install ok installed
Multi-Arch: same
Architecture: i386
Version: 3.0.17-1~deb12u2

Package: libold
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: libhalf
Status: install reinstreq half-installed
Architecture: amd64
Version: 2.0-1
)";

TEST(DpkgDatabaseTest, FindsAPackagesStanzaByNameAndArchitecture) {
  auto openssl = FindDpkgStanza(kStatus, "openssl");
  ASSERT_TRUE(openssl.ok()) << openssl.error().ToString();
  EXPECT_EQ(openssl->version, "3.0.17-1~deb12u2");
  EXPECT_EQ(openssl->architecture, "amd64");
  EXPECT_EQ(openssl->status, "install ok installed");
  EXPECT_EQ(openssl->conffiles, std::vector<std::string>{"/etc/ssl/openssl.cnf"});
  auto amd64 = FindDpkgStanza(kStatus, "libssl3:amd64");
  ASSERT_TRUE(amd64.ok());
  EXPECT_EQ(amd64->architecture, "amd64");
  // Installed for two architectures: the name alone is ambiguous.
  auto both = FindDpkgStanza(kStatus, "libssl3");
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(FindDpkgStanza(kStatus, "libssl").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(FindDpkgStanza(kStatus, "libssl3:arm64").error().code(), ErrorCode::kNotFound);
}

TEST(DpkgDatabaseTest, AMalformedStatusFileIsAnErrorNotAnAnswer) {
  EXPECT_EQ(
      FindDpkgStanza("Package: libssl3\n continuation\nno colon here\n", "libssl3").error().code(),
      ErrorCode::kCorrupt);
  EXPECT_EQ(
      FindDpkgStanza("Package: libssl3\nStatus: install ok installed\n", "libssl3").error().code(),
      ErrorCode::kCorrupt);  // no Version
}

// A dpkg database under a test directory, and the package's files under another.
class DpkgFixture {
 public:
  DpkgFixture() {
    for (const char* d : {"dpkg/info", "root/lib", "root/etc"}) {
      EXPECT_TRUE(MakeDirs(Env::Default(), dir_.Sub(d)).ok());
    }
    WriteTestFile(Lib("libssl.so.3"), "ssl");
    WriteTestFile(Lib("libcrypto.so.3"), "crypto");
    WriteTestFile(dir_.Sub("root/etc/openssl.cnf"), "conf");
    EXPECT_EQ(::symlink("libssl.so.3", Lib("libssl.so").c_str()), 0);
  }
  std::string Lib(const std::string& name) const { return dir_.Sub("root/lib/" + name); }
  std::string Admin() const { return dir_.Sub("dpkg"); }
  void Write(const std::string& status) {
    WriteTestFile(dir_.Sub("dpkg/status"), status);
    WriteTestFile(dir_.Sub("dpkg/info/libssl3:amd64.list"),
                  "/.\n" + dir_.Sub("root") + "\n" + dir_.Sub("root/lib") + "\n" +
                      Lib("libssl.so.3") + "\n" + Lib("libcrypto.so.3") + "\n" + Lib("libssl.so") +
                      "\n" + dir_.Sub("root/etc/openssl.cnf") + "\n" + Lib("gone.so") + "\n");
    WriteTestFile(dir_.Sub("dpkg/info/libssl3:amd64.md5sums"),
                  "0123456789abcdef0123456789abcdef  " + Lib("libssl.so.3").substr(1) + "\n");
  }
  std::string Stanza(const std::string& status_line, const std::string& version) const {
    return "Package: libssl3\nStatus: " + status_line +
           "\nMulti-Arch: same\nArchitecture: amd64\nVersion: " + version + "\nConffiles:\n " +
           dir_.Sub("root/etc/openssl.cnf") + " abc\n";
  }

 private:
  TestDir dir_;
};

TEST(DpkgDatabaseTest, APackagesFilesAreItsRegularFilesWithoutConffiles) {
  DpkgFixture f;
  f.Write(f.Stanza("install ok installed", "3.0.17-1~deb12u2"));
  auto package = ReadDpkgPackage(Env::Default(), f.Admin(), "libssl3");
  ASSERT_TRUE(package.ok()) << package.error().ToString();
  // Directories, the symlink, the conffile and a file removed by hand are not the package's
  // files to patch.
  EXPECT_EQ(package->files,
            (std::vector<std::string>{f.Lib("libcrypto.so.3"), f.Lib("libssl.so.3")}));
  EXPECT_EQ(package->md5sums.at(f.Lib("libssl.so.3")), "0123456789abcdef0123456789abcdef");
}

TEST(DpkgDatabaseTest, AComponentOfAMissingOrHalfInstalledPackageIsInactiveAndSaysWhy) {
  DpkgFixture f;
  ComponentConfig c;
  c.name = "openssl";
  c.package = "libssl3";
  c.kind = RootKind::kSharedFiles;
  c.base_version.kind = BaseVersionSource::Kind::kPackage;
  ComponentConfig plain;
  plain.name = "other";
  plain.root = "/opt/other";

  f.Write(f.Stanza("install ok installed", "3.0.17-1~deb12u2"));
  auto set = ResolvePackageComponents(Env::Default(), f.Admin(), {c, plain});
  ASSERT_EQ(set.active.size(), 2u);
  EXPECT_TRUE(set.inactive.empty());
  EXPECT_EQ(set.active[0].platform, "linux-x86_64");  // from the package's architecture
  EXPECT_EQ(set.active[0].files.size(), 2u);
  auto version = InstalledPackageVersion(Env::Default(), f.Admin(), "libssl3");
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, "3.0.17-1~deb12u2");

  f.Write(f.Stanza("install reinstreq half-installed", "3.0.20-1~deb12u2"));
  set = ResolvePackageComponents(Env::Default(), f.Admin(), {c, plain});
  ASSERT_EQ(set.active.size(), 1u);
  EXPECT_EQ(set.active[0].name, "other");
  ASSERT_EQ(set.inactive.size(), 1u);
  EXPECT_NE(set.inactive[0].reason.find("half-installed"), std::string::npos)
      << set.inactive[0].reason;
  EXPECT_EQ(InstalledPackageVersion(Env::Default(), f.Admin(), "libssl3").error().code(),
            ErrorCode::kFailedPrecondition);

  f.Write("Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n");
  set = ResolvePackageComponents(Env::Default(), f.Admin(), {c});
  ASSERT_EQ(set.inactive.size(), 1u);
  EXPECT_NE(set.inactive[0].reason.find("not known to dpkg"), std::string::npos);
}

TEST(ComponentConfigTest, APackageComponentTakesItsVersionFromDpkg) {
  auto c = ParseComponentConfig("name = \"openssl\"\npackage = \"libssl3:amd64\"\n", "o.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->package, "libssl3:amd64");
  EXPECT_EQ(c->kind, RootKind::kSharedFiles);
  EXPECT_EQ(c->base_version.kind, BaseVersionSource::Kind::kPackage);
  EXPECT_TRUE(c->platform.empty());
  for (const char* bad : {
           "name = \"o\"\npackage = \"libssl3\"\nroot = \"/opt/o\"\n",
           "name = \"o\"\npackage = \"libssl3\"\n[base_version]\nliteral = \"1\"\n",
           "name = \"o\"\npackage = \"LibSSL\"\n",
           "name = \"o\"\npackage = \"libssl3:\"\n",
           "name = \"o\"\npackage = \"libssl3; rm -rf /\"\n",
       }) {
    EXPECT_FALSE(ParseComponentConfig(bad, "o.toml").ok()) << bad;
  }
}

}  // namespace
}  // namespace qp::store
