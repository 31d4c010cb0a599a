#include "agent/agent_config.h"

#include <gtest/gtest.h>

#include "core/test_dir.h"

namespace qp::agent {
namespace {

TEST(AgentConfigTest, ReadsConfigPolicyAndSettings) {
  TestDir dir;
  WriteTestFile(
      dir.Sub("agent.toml"),
      "repository_url = \"http://127.0.0.1:8080/repo/\"\nserver_url = \"http://127.0.0.1:8080\"\n"
      "interval_seconds = 60\nadmin_group = \"quietpatch\"\ninstall_cache_bytes = 1048576\n");
  auto c = LoadAgentConfig(Env::Default(), dir.path(), dir.Sub("state"));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->repository_url, "http://127.0.0.1:8080/repo");
  EXPECT_EQ(c->interval, std::chrono::seconds(60));
  EXPECT_EQ(c->trusted_root, dir.Sub("root.json"));
  EXPECT_EQ(c->components_dir, dir.Sub("components"));
  EXPECT_EQ(c->install_cache_bytes, 1048576u);

  auto p = LoadPolicy(Env::Default(), dir.path());
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->present);
  WriteTestFile(dir.Sub("policy.toml"), "auto_install = false\ndefer_hours = 24\n");
  p = LoadPolicy(Env::Default(), dir.path());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->auto_install, false);
  EXPECT_EQ(p->defer, std::chrono::hours(24));
  WriteTestFile(dir.Sub("policy.toml"), "defer_hours = 100\n");
  p = LoadPolicy(Env::Default(), dir.path());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("defer_hours"), std::string::npos);

  auto s = LoadSettings(Env::Default(), dir.path());
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->auto_install);  // on by default
  ASSERT_TRUE(SaveSettings(Env::Default(), dir.path(), Settings{false}).ok());
  EXPECT_FALSE(LoadSettings(Env::Default(), dir.path())->auto_install);
}

TEST(AgentConfigTest, RejectsBadConfiguration) {
  TestDir dir;
  WriteTestFile(dir.Sub("agent.toml"), "repository_url = \"ftp://x\"\n");
  auto c = LoadAgentConfig(Env::Default(), dir.path(), dir.Sub("state"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("agent.toml: repository_url"), std::string::npos);
  WriteTestFile(dir.Sub("agent.toml"), "repository_url = \"http://x\"\nintervall = 3\n");
  EXPECT_FALSE(LoadAgentConfig(Env::Default(), dir.path(), dir.Sub("state")).ok());
  for (const char* bad : {"repository_url = []\n", "repository_url = [\"http://a\", 3]\n",
                          "repository_url = [\"http://a\", \"file:///etc\"]\n",
                          "repository_url = \"http://a\"\nserver_url = [\"ftp://b\"]\n",
                          "repository_url = \"http://a\"\ninstall_cache_bytes = -1\n"}) {
    WriteTestFile(dir.Sub("agent.toml"), bad);
    EXPECT_FALSE(LoadAgentConfig(Env::Default(), dir.path(), dir.Sub("state")).ok()) << bad;
  }
}

TEST(AgentConfigTest, ListsMirrorsAndInstances) {
  TestDir dir;
  WriteTestFile(dir.Sub("agent.toml"),
                "repository_url = [\"http://edge-a/repo/\", \"https://edge-b/repo\"]\n"
                "server_url = [\"http://lb\", \"http://i1\", \"http://i2\"]\n");
  auto c = LoadAgentConfig(Env::Default(), dir.path(), dir.Sub("state"));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->repository_urls,
            (std::vector<std::string>{"http://edge-a/repo", "https://edge-b/repo"}));
  EXPECT_EQ(c->repository_url, "http://edge-a/repo");
  EXPECT_EQ(c->server_urls.size(), 3u);
  EXPECT_EQ(c->server_url, "http://lb");
}

}  // namespace
}  // namespace qp::agent
