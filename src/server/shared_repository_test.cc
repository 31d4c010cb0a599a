// Several instances on one PostgreSQL database: the repository in the database
// (online/repo_db.h) and the instances that share it (shared_repository.h).
#include "server/shared_repository.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "contract/timestamp_peek.h"
#include "core/durable_file.h"
#include "core/test_dir.h"
#include "online/online_repository.h"
#include "online/repo_db.h"
#include "publish/test_repository.h"
#include "server/server.h"
#include "server/test_http.h"
#include "server/test_postgres.h"

namespace qp::server {
namespace {

using Json = nlohmann::json;
using online::RepoDb;

constexpr const char* kToken = "0123456789abcdef0123456789abcdef";

std::uint64_t TimestampVersionIn(const std::string& repo_dir) {
  auto bytes = ReadFileLimited(Env::Default(), repo_dir + "/metadata/timestamp.json", 1 << 20);
  if (!bytes.ok()) return 0;
  auto t = contract::PeekTimestamp(*bytes);
  return t.ok() ? t->version : 0;
}

class SharedRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(pg_.url().empty()) << pg_.error();
    // The publisher's working copy: a repository with one improvement, pushed.
    paths_ = {dir_.Sub("pub"), dir_.Sub("keys")};
    ASSERT_TRUE(publish::MakeTestRepository(dir_, paths_).ok());
    auto db = RepoDb::Open(pg_.url());
    ASSERT_TRUE(db.ok()) << db.error().ToString();
    db_ = std::move(*db);
    auto pushed = db_->Push(Env::Default(), paths_.repo_dir, 0, "test");
    ASSERT_TRUE(pushed.ok()) << pushed.error().ToString();
    ASSERT_EQ(pushed->number, 1);
    WriteTestFile(dir_.Sub("token"), std::string(kToken) + "\n");
    ::chmod(dir_.Sub("token").c_str(), 0600);
  }

  // A working copy pulled from the database; returns its generation.
  std::int64_t PullCopy(const std::string& dir) {
    auto g = db_->Pull(Env::Default(), dir, 0);
    EXPECT_TRUE(g.ok()) << g.error().ToString();
    return g.ok() ? g->number : -1;
  }

  Status Halt(const std::string& repo_dir, bool halted) {
    return online::SetRollout(Env::Default(), Clock::Real(), {repo_dir, paths_.keys_dir},
                              *contract::ImprovementId::Parse("comp/1.0/a"), std::nullopt, halted,
                              halted ? "test" : "");
  }

  std::unique_ptr<Server> StartInstance(const std::string& name) {
    ServerConfig c;
    c.listen_address = "127.0.0.1";
    c.listen_port = 0;
    c.repo_dir = dir_.Sub(name);
    c.keys_dir = paths_.keys_dir;
    c.admin_token_file = dir_.Sub("token");
    c.database = pg_.url();
    c.shared_repository = true;
    c.instance_name = name;
    auto s = Server::Open(c, Env::Default(), Clock::Real());
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    if (!s.ok()) return nullptr;
    EXPECT_TRUE((*s)->Start().ok());
    return std::move(*s);
  }

  TestPostgres pg_;
  TestDir dir_;
  online::RepoPaths paths_;
  std::unique_ptr<RepoDb> db_;
};

// Two copies changed from the same generation: the first push lands, the second is
// refused whole (the database unchanged), and lands once redone on a fresh pull. Every
// timestamp version is pushed once, in order.
TEST_F(SharedRepositoryTest, APushBasedOnAnOldGenerationIsRefusedAndVersionsNeverRepeat) {
  ASSERT_EQ(PullCopy(dir_.Sub("b")), 1);
  ASSERT_EQ(PullCopy(dir_.Sub("c")), 1);
  EXPECT_EQ(TimestampVersionIn(dir_.Sub("b")), TimestampVersionIn(paths_.repo_dir));
  ASSERT_TRUE(Halt(dir_.Sub("b"), true).ok());
  ASSERT_TRUE(online::SetRollout(Env::Default(), Clock::Real(), {dir_.Sub("c"), paths_.keys_dir},
                                 *contract::ImprovementId::Parse("comp/1.0/a"), 50, std::nullopt,
                                 "")
                  .ok());
  // Both signed the same next timestamp version, over different changes.
  ASSERT_EQ(TimestampVersionIn(dir_.Sub("b")), TimestampVersionIn(dir_.Sub("c")));
  auto first = db_->Push(Env::Default(), dir_.Sub("b"), 1, "b");
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(first->number, 2);
  auto second = db_->Push(Env::Default(), dir_.Sub("c"), 1, "c");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(second.error().message().find("generation 2"), std::string::npos)
      << second.error().ToString();
  // c's timestamp has the same version as the one pushed, over other contents: even based
  // on the right generation it is refused (a version is never signed twice).
  auto same_version = db_->Push(Env::Default(), dir_.Sub("c"), 2, "c");
  ASSERT_FALSE(same_version.ok());
  EXPECT_EQ(same_version.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(db_->Current()->number, 2);
  // Redone on a fresh pull, it lands.
  ASSERT_EQ(PullCopy(dir_.Sub("c")), 2);
  ASSERT_TRUE(Halt(dir_.Sub("c"), false).ok());
  auto redone = db_->Push(Env::Default(), dir_.Sub("c"), 2, "c");
  ASSERT_TRUE(redone.ok()) << redone.error().ToString();
  auto versions = db_->TimestampVersions();
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 3u);
  for (std::size_t i = 1; i < versions->size(); ++i) {
    EXPECT_GT((*versions)[i].first, (*versions)[i - 1].first);
  }
  // A copy pulled now holds what the database holds.
  ASSERT_EQ(PullCopy(dir_.Sub("d")), 3);
  EXPECT_EQ(ReadTestFile(dir_.Sub("d/metadata/timestamp.json")),
            ReadTestFile(dir_.Sub("c/metadata/timestamp.json")));
}

// What the database hands a pull is checked before anything is written: a path that
// leaves the repository, or content that does not match its hash, is refused.
TEST_F(SharedRepositoryTest, APullRefusesPathsOutsideTheRepositoryAndAlteredContent) {
  auto* conn = db_->connection();
  ASSERT_TRUE(conn->Exec("INSERT INTO repo_files VALUES ('targets/../../escaped', 'x', "
                         "'2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881', 9)")
                  .ok());
  auto escaped = db_->Pull(Env::Default(), dir_.Sub("e/repo"), 0);
  ASSERT_FALSE(escaped.ok());
  EXPECT_EQ(escaped.error().code(), ErrorCode::kCorrupt);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("escaped")));
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("e/repo/metadata/timestamp.json")));
  ASSERT_TRUE(conn->Exec("DELETE FROM repo_files WHERE generation = 9").ok());
  ASSERT_TRUE(conn->Exec("UPDATE repo_files SET content = 'forged' WHERE path = "
                         "'metadata/1.root.json'")
                  .ok());
  auto altered = db_->Pull(Env::Default(), dir_.Sub("f"), 0);
  ASSERT_FALSE(altered.ok());
  EXPECT_EQ(altered.error().code(), ErrorCode::kCorrupt);
  EXPECT_NE(altered.error().message().find("1.root.json"), std::string::npos);
}

// Three instances, one signer. A halt asked of any instance is made once, by the signer,
// and every instance serves it and wakes its watchers. When the signer's session dies,
// another instance takes the role and the next change lands; no version repeats.
TEST_F(SharedRepositoryTest, InstancesShareOneSignerAndEveryWatcherSeesEachChange) {
  std::vector<std::unique_ptr<Server>> servers;
  for (const char* name : {"i1", "i2", "i3"}) {
    servers.push_back(StartInstance(name));
    ASSERT_NE(servers.back(), nullptr);
  }
  auto signers = [&] {
    int n = 0;
    for (auto& s : servers) n += s != nullptr && s->shared()->MaySign() ? 1 : 0;
    return n;
  };
  ASSERT_TRUE(Eventually([&] { return signers() == 1; }, std::chrono::seconds(5)));
  std::uint64_t v = TimestampVersionIn(dir_.Sub("i1"));
  ASSERT_GT(v, 0u);
  for (const char* name : {"i2", "i3"}) EXPECT_EQ(TimestampVersionIn(dir_.Sub(name)), v);

  auto change_everywhere = [&](const std::string& body, std::size_t through) {
    std::vector<Reply> woke(servers.size());
    std::vector<std::thread> watchers;
    for (std::size_t i = 0; i < servers.size(); ++i) {
      if (servers[i] == nullptr) continue;
      watchers.emplace_back([&, i] {
        woke[i] = Http(servers[i]->port(), "GET",
                       "/v1/watch?timestamp=" + std::to_string(v) + "&timeout=20");
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Reply r = Http(servers[through]->port(), "POST", "/v1/admin/rollout", body,
                   {std::string("Authorization: Bearer ") + kToken});
    EXPECT_EQ(r.status, 200) << r.body;
    for (auto& w : watchers) w.join();
    std::uint64_t now = 0;
    for (std::size_t i = 0; i < servers.size(); ++i) {
      if (servers[i] == nullptr) continue;
      EXPECT_EQ(woke[i].status, 200) << "instance " << i;
      auto answered = Json::parse(woke[i].body, nullptr, false);
      EXPECT_TRUE(answered.is_object() && answered["timestamp"].get<std::uint64_t>() > v)
          << woke[i].body;
      Reply served = Http(servers[i]->port(), "GET", "/repo/metadata/timestamp.json");
      std::uint64_t version = Json::parse(served.body)["signed"]["version"].get<std::uint64_t>();
      if (now == 0) now = version;
      EXPECT_EQ(version, now) << "instance " << i << " serves another version";
    }
    v = now;
  };
  // Through an instance that is not the signer: handed over, made once.
  std::size_t signer = 0;
  for (std::size_t i = 0; i < servers.size(); ++i) {
    if (servers[i]->shared()->MaySign()) signer = i;
  }
  change_everywhere(R"({"id":"comp/1.0/a","halted":true,"reason":"through another"})",
                    (signer + 1) % servers.size());
  auto rollout = online::ReadRollout(Env::Default(), Clock::Real(), {dir_.Sub("i3"), ""});
  ASSERT_TRUE(rollout.ok());
  EXPECT_TRUE(rollout->Find("comp/1.0/a")->halted);

  // The signer's session dies (as with its process): another instance takes over.
  ASSERT_TRUE(db_->connection()
                  ->Exec("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = "
                         "'advisory' AND objid = 7393 AND granted")
                  .ok());
  servers[signer]->Stop();
  servers[signer].reset();
  ASSERT_TRUE(Eventually([&] { return signers() == 1; }, std::chrono::seconds(10)));
  change_everywhere(R"({"id":"comp/1.0/a","halted":false})", (signer + 2) % 3);
  auto versions = db_->TimestampVersions();
  ASSERT_TRUE(versions.ok());
  for (std::size_t i = 1; i < versions->size(); ++i) {
    EXPECT_GT((*versions)[i].first, (*versions)[i - 1].first);
  }
}

}  // namespace
}  // namespace qp::server
