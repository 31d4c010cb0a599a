#include "store/component_config.h"

#include <gtest/gtest.h>

#include "core/test_dir.h"

namespace qp::store {
namespace {

constexpr const char* kOwned = R"(
name = "openssl"
platform = "linux-x86_64"
root = "/opt/openssl"

[base_version]
command = ["dpkg-query", "-W", "-f=${Version}", "libssl3"]

[health_check]
command = ["/opt/openssl/bin/openssl", "version"]
timeout_seconds = 10

[restart]
hooks = [["systemctl", "try-restart", "nginx"], ["true"]]
)";

TEST(ComponentConfigTest, ParsesAnOwnedDirectoryComponent) {
  auto c = ParseComponentConfig(kOwned, "openssl.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->name, "openssl");
  EXPECT_EQ(c->kind, RootKind::kOwnedDirectory);
  EXPECT_EQ(c->root, "/opt/openssl");
  EXPECT_EQ(c->base_version.kind, BaseVersionSource::Kind::kCommand);
  EXPECT_EQ(c->base_version.command.size(), 4u);
  EXPECT_EQ(c->health_timeout, std::chrono::seconds(10));
  ASSERT_EQ(c->restart_hooks.size(), 2u);
  EXPECT_EQ(c->restart_hooks[0][2], "nginx");
}

TEST(ComponentConfigTest, ParsesSharedFilesSorted) {
  auto c = ParseComponentConfig(R"(
name = "libssl3"
platform = "linux-x86_64"
files = ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"]
[base_version]
literal = "3.0.17-1~deb12u2"
)",
                                "libssl3.toml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->kind, RootKind::kSharedFiles);
  EXPECT_EQ(c->files[0], "/usr/lib/x86_64-linux-gnu/libcrypto.so.3");
  EXPECT_TRUE(c->health_check.empty());
}

struct BadCase {
  const char* toml;
  const char* field;
};

TEST(ComponentConfigTest, InvalidConfigurationNamesFileAndField) {
  const BadCase cases[] = {
      {"platform = \"x\"\nroot = \"/a\"\n[base_version]\nliteral = \"1\"\n", "name"},
      {"name = \"Bad Name\"\nplatform = \"x\"\nroot = \"/a\"\n[base_version]\nliteral = \"1\"\n",
       "name"},
      {"name = \"a\"\nplatform = \"x\"\n[base_version]\nliteral = \"1\"\n", "root/files/package"},
      {"name = \"a\"\nplatform = \"x\"\nroot = \"/a\"\nfiles = [\"/b\"]\n[base_version]\nliteral = "
       "\"1\"\n",
       "root/files/package"},
      {"name = \"a\"\nplatform = \"x\"\nroot = \"relative\"\n[base_version]\nliteral = \"1\"\n",
       "root"},
      {"name = \"a\"\nplatform = \"x\"\nroot = \"/a/../b\"\n[base_version]\nliteral = \"1\"\n",
       "root"},
      {"name = \"a\"\nplatform = \"x\"\nroot = \"/a\"\n", "base_version"},
      {"name = \"a\"\nplatform = \"x\"\nroot = \"/a\"\n[base_version]\nliteral = \"1\"\nfile = "
       "\"/v\"\n",
       "base_version"},
      {"name = \"a\"\nplatform = \"x\"\nroot = \"/a\"\n[base_version]\nliteral = \"1\"\n"
       "[health_check]\ncommand = []\n",
       "health_check.command"},
      {"name = \"a\"\nplatform = \"x\"\nroot = \"/a\"\n[base_version]\nliteral = \"1\"\n"
       "[health_check]\ncommand = [\"x\"]\ntimeout_seconds = 0\n",
       "health_check.timeout_seconds"},
      {"name = \"a\"\nplatform = \"x\"\nroot = \"/a\"\nsurprise = 1\n[base_version]\nliteral = "
       "\"1\"\n",
       "surprise"},
      {"name = \"a\"\nplatform = \"x\"\nfiles = [\"/b\", \"/b\"]\n[base_version]\nliteral = "
       "\"1\"\n",
       "files"},
  };
  for (const auto& bad : cases) {
    auto c = ParseComponentConfig(bad.toml, "/etc/quietpatch/components/a.toml");
    ASSERT_FALSE(c.ok()) << bad.toml;
    EXPECT_EQ(c.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(c.error().message().find(
                  "/etc/quietpatch/components/a.toml: " + std::string(bad.field) + ":"),
              std::string::npos)
        << c.error().message();
  }
  auto non_ascii = ParseComponentConfig("\xcb\x8d\n\r", "odd.toml");
  ASSERT_FALSE(non_ascii.ok());
  EXPECT_NE(non_ascii.error().message().find("odd.toml:1: byte 0xCB is not ASCII"),
            std::string::npos);
  auto syntax = ParseComponentConfig("name = \"a\n", "broken.toml");
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.error().message().find("broken.toml:1"), std::string::npos);
}

TEST(ComponentConfigTest, WritablePathsAreWhereRootsAreSwappedAndWhereSharedFilesLive) {
  ComponentConfig owned, shared, inside;
  owned.kind = RootKind::kOwnedDirectory;
  owned.root = "/opt/vendor/openssl";
  inside.kind = RootKind::kOwnedDirectory;
  inside.root = "/opt/vendor/openssl/engines/x";
  shared.kind = RootKind::kSharedFiles;
  shared.files = {"/usr/lib/x86_64-linux-gnu/libssl.so.3",
                  "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "/usr/lib/ssl/openssl.cnf",
                  "/opt/vendor-extra/x"};
  EXPECT_EQ(WritablePaths({owned, shared, inside}),
            (std::vector<std::string>{"/opt/vendor", "/opt/vendor-extra", "/usr/lib/ssl",
                                      "/usr/lib/x86_64-linux-gnu"}));
  EXPECT_TRUE(WritablePaths({}).empty());
  // A Debian package: its files' directories, and dpkg's lock, which the store opens.
  ComponentConfig package = shared;
  package.package = "libssl3";
  package.files = {"/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/share/doc/libssl3/changelog.gz"};
  EXPECT_EQ(WritablePaths({package}),
            (std::vector<std::string>{"/usr/lib/x86_64-linux-gnu", "/usr/share/doc/libssl3",
                                      "/var/lib/dpkg/lock-frontend"}));
}

TEST(ComponentConfigTest, LoadsADirectoryAndRejectsDuplicates) {
  TestDir dir;
  WriteTestFile(dir.Sub("openssl.toml"), kOwned);
  WriteTestFile(dir.Sub("README"), "not a component");
  auto all = LoadComponentConfigs(Env::Default(), dir.path());
  ASSERT_TRUE(all.ok()) << all.error().ToString();
  ASSERT_EQ(all->size(), 1u);
  WriteTestFile(dir.Sub("openssl-again.toml"), kOwned);
  auto dup = LoadComponentConfigs(Env::Default(), dir.path());
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.error().message().find("configured twice"), std::string::npos);
}

}  // namespace
}  // namespace qp::store
