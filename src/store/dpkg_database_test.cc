// Components that are Debian packages: dpkg-query's answers parsed, a package's files and
// version read through the real dpkg-query from a database the test writes
// (--admindir), and the components resolved from them.
#include "store/dpkg_database.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "core/durable_file.h"
#include "core/test_dir.h"
#include "store/component_config.h"
#include "store/package_component.h"
#include "store/store_test_util.h"

namespace qp::store {
namespace {

TEST(DpkgDatabaseTest, ParsesDpkgQueryAnswersWithTheirConffiles) {
  auto stanzas = ParseDpkgQueryStanzas(
      "openssl\tamd64\t3.0.17-1~deb12u2\tinstall ok installed\n"
      " /etc/ssl/openssl.cnf 0123456789abcdef0123456789abcdef\n"
      " /etc/ssl/old.cnf 0123456789abcdef0123456789abcdef obsolete\n--\n"
      "libssl3:i386\ti386\t3.0.17-1~deb12u2\tinstall ok installed\n\n--\n");
  ASSERT_TRUE(stanzas.ok()) << stanzas.error().ToString();
  ASSERT_EQ(stanzas->size(), 2u);
  EXPECT_EQ((*stanzas)[0].package, "openssl");
  EXPECT_EQ((*stanzas)[0].version, "3.0.17-1~deb12u2");
  EXPECT_EQ((*stanzas)[0].conffiles,
            (std::vector<std::string>{"/etc/ssl/openssl.cnf", "/etc/ssl/old.cnf"}));
  EXPECT_EQ((*stanzas)[1].package, "libssl3:i386");
  EXPECT_TRUE((*stanzas)[1].conffiles.empty());
  for (const char* bad : {"libssl3\tamd64\t1\n--\n", "libssl3\tamd64\t1\tinstall ok installed\n",
                          "--\n", "a\tb\tc\td\nnot a conffile\n--\n"}) {
    EXPECT_EQ(ParseDpkgQueryStanzas(bad).error().code(), ErrorCode::kCorrupt) << bad;
  }
}

// A dpkg database under a test directory, and the package's files under another.
class DpkgFixture {
 public:
  DpkgFixture() {
    for (const char* d : {"root/lib", "root/etc"}) {
      EXPECT_TRUE(MakeDirs(Env::Default(), dir_.Sub(d)).ok());
    }
    WriteTestFile(Lib("libssl.so.3"), "ssl");
    WriteTestFile(Lib("libcrypto.so.3"), "crypto");
    WriteTestFile(Conffile(), "conf");
    EXPECT_EQ(::symlink("libssl.so.3", Lib("libssl.so").c_str()), 0);
  }
  std::string Lib(const std::string& name) const { return dir_.Sub("root/lib/" + name); }
  std::string Conffile() const { return dir_.Sub("root/etc/openssl.cnf"); }
  std::string Admin() const { return dir_.Sub("dpkg"); }
  void Write(const std::string& status, const std::string& version,
             const std::string& more_stanzas = "") {
    WriteDpkgDatabase(
        Admin(), DpkgStanzaText("libssl3", "amd64", status, version, Conffile()) + more_stanzas);
    WriteTestFile(dir_.Sub("dpkg/info/libssl3:amd64.list"),
                  "/.\n" + dir_.Sub("root") + "\n" + dir_.Sub("root/lib") + "\n" +
                      Lib("libssl.so.3") + "\n" + Lib("libcrypto.so.3") + "\n" + Lib("libssl.so") +
                      "\n" + Conffile() + "\n" + Lib("gone.so") + "\n");
    WriteTestFile(dir_.Sub("dpkg/info/libssl3:amd64.md5sums"),
                  "0123456789abcdef0123456789abcdef  " + Lib("libssl.so.3").substr(1) + "\n");
  }

 private:
  TestDir dir_;
};

TEST(DpkgDatabaseTest, APackagesFilesAreItsRegularFilesWithoutConffiles) {
  DpkgFixture f;
  f.Write("install ok installed", "3.0.17-1~deb12u2");
  auto package = QueryDpkgPackage(Env::Default(), f.Admin(), "libssl3");
  ASSERT_TRUE(package.ok()) << package.error().ToString();
  EXPECT_EQ(package->stanza.package, "libssl3:amd64");
  EXPECT_EQ(package->stanza.version, "3.0.17-1~deb12u2");
  // Directories, the symlink, the conffile and a file removed by hand are not the package's
  // files to patch.
  EXPECT_EQ(package->files,
            (std::vector<std::string>{f.Lib("libcrypto.so.3"), f.Lib("libssl.so.3")}));
  EXPECT_EQ(package->md5sums.at(f.Lib("libssl.so.3")), "0123456789abcdef0123456789abcdef");
}

TEST(DpkgDatabaseTest, APackageOfSeveralArchitecturesMustBeNamedWithOne) {
  DpkgFixture f;
  f.Write("install ok installed", "3.0.17-1~deb12u2",
          DpkgStanzaText("libssl3", "i386", "install ok installed", "3.0.17-1~deb12u2"));
  auto both = QueryDpkgStanza(f.Admin(), "libssl3");
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.error().code(), ErrorCode::kInvalidArgument) << both.error().ToString();
  auto amd64 = QueryDpkgStanza(f.Admin(), "libssl3:amd64");
  ASSERT_TRUE(amd64.ok()) << amd64.error().ToString();
  EXPECT_EQ(amd64->architecture, "amd64");
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

  f.Write("install ok installed", "3.0.17-1~deb12u2");
  auto set = ResolvePackageComponents(Env::Default(), f.Admin(), {c, plain});
  ASSERT_EQ(set.active.size(), 2u);
  EXPECT_TRUE(set.inactive.empty());
  EXPECT_EQ(set.active[0].platform, "linux-x86_64");  // from the package's architecture
  EXPECT_EQ(set.active[0].files.size(), 2u);
  auto version = InstalledPackageVersion(f.Admin(), "libssl3");
  ASSERT_TRUE(version.ok()) << version.error().ToString();
  EXPECT_EQ(*version, "3.0.17-1~deb12u2");

  f.Write("install reinstreq half-installed", "3.0.20-1~deb12u2");
  set = ResolvePackageComponents(Env::Default(), f.Admin(), {c, plain});
  ASSERT_EQ(set.active.size(), 1u);
  EXPECT_EQ(set.active[0].name, "other");
  ASSERT_EQ(set.inactive.size(), 1u);
  EXPECT_NE(set.inactive[0].reason.find("half-installed"), std::string::npos)
      << set.inactive[0].reason;
  EXPECT_EQ(InstalledPackageVersion(f.Admin(), "libssl3").error().code(),
            ErrorCode::kFailedPrecondition);

  WriteDpkgDatabase(f.Admin(), DpkgStanzaText("zlib1g", "amd64", "install ok installed", "1"));
  set = ResolvePackageComponents(Env::Default(), f.Admin(), {c});
  ASSERT_EQ(set.inactive.size(), 1u);
  EXPECT_NE(set.inactive[0].reason.find("not known to dpkg"), std::string::npos)
      << set.inactive[0].reason;
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
           "name = \"o\"\npackage = \"-libssl3\"\n",
       }) {
    EXPECT_FALSE(ParseComponentConfig(bad, "o.toml").ok()) << bad;
  }
}

}  // namespace
}  // namespace qp::store
