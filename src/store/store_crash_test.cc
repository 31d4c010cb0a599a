// Crash and fault tests of the store, in the style of leveldb's fault-injection tests and
// Mender's kill-at-each-state tests: for install, rollback and removal, in both activation
// modes, crash at every file-system operation in turn (dropping what was not fsynced),
// recover, and check that the component is entirely the old or entirely the new tree,
// never a mix, and that a second recovery changes nothing. Then ENOSPC and EIO at every
// operation, and kill -9 of a real installing process.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <random>

#include "core/fault_env.h"
#include "store/store_test_util.h"

namespace qp::store {
namespace {

enum class Operation { kInstall, kRollback, kRemove };

struct CrashCase {
  RootKind kind;
  Operation op;
  const char* name;
};

class StoreCrashTest : public ::testing::TestWithParam<CrashCase> {};

// Runs the operation under test on `store` (for removal, the install happened before).
Status RunOperation(Store& store, StoreFixture& f, Operation op) {
  if (op == Operation::kRemove) return store.Remove("comp", "requested by the test");
  auto r = store.Install("comp", f.Request());
  if (!r.ok()) return r.error();
  return OkStatus();
}

TEST_P(StoreCrashTest, CrashAtEveryOperationLeavesOldOrNewTree) {
  const CrashCase& tc = GetParam();
  StoreFixture f(tc.kind);
  bool healthy = tc.op != Operation::kRollback;
  int crash_points = 0;
  std::map<std::string, int> outcomes;
  for (int n = 1;; ++n) {
    f.Reset();
    FaultInjectionEnv env(Env::Default(), f.dir_.Sub("shadow"));
    {
      Store setup(f.Options(&env, healthy), {f.config_});
      ASSERT_TRUE(setup.Reconcile("comp").ok());
      if (tc.op == Operation::kRemove) {
        auto r = setup.Install("comp", f.Request());
        ASSERT_TRUE(r.ok() && r->committed);
      }
    }
    // Everything before this point is durable (but for entries inside the scratch trees
    // whose own removal was synced: they are unreachable whatever happens to them).
    for (const auto& u : env.UnsyncedChanges()) {
      if (u.find("/state/comp/view/") == std::string::npos &&
          u.find("/state/comp/staged/") == std::string::npos) {
        ADD_FAILURE() << u;
      }
    }
    env.ResetCounter();
    env.CrashAtOperation(n);
    Status s;
    {
      Store store(f.Options(&env, healthy), {f.config_});
      s = RunOperation(store, f, tc.op);
    }
    if (!env.crashed()) {
      // The operation finished before operation n: every crash point has been tried.
      ASSERT_TRUE(s.ok()) << s.error().ToString();
      break;
    }
    ++crash_points;
    Status dropped = env.DropUnsyncedChanges();
    ASSERT_TRUE(dropped.ok()) << "crash at op " << n << ": " << dropped.error().ToString();
    env.ClearCrash();

    Store recovered(f.Options(&env, healthy), {f.config_});
    Status rs = recovered.RecoverAll();
    ASSERT_TRUE(rs.ok()) << "crash at op " << n << ": " << rs.error().ToString();
    std::string live = f.LiveDigest();
    ASSERT_TRUE(live == f.old_digest_ || live == f.new_digest_)
        << "crash at op " << n << " left a mixed tree";
    if (tc.op == Operation::kRollback) {
      ASSERT_EQ(live, f.old_digest_) << "crash at op " << n;
    }
    outcomes[live == f.old_digest_ ? "old" : "new"]++;
    auto status = recovered.GetStatus("comp");
    ASSERT_TRUE(status.ok());
    ASSERT_EQ(status->current.digest, live) << "crash at op " << n << ": state disagrees";
    ASSERT_FALSE(status->modified);
    ASSERT_TRUE(f.Leftovers().empty())
        << "crash at op " << n << " (" << s.error().ToString() << "): " << f.Leftovers()[0] << "\n"
        << f.StateFile();

    // A second recovery changes nothing.
    std::string state_before = f.StateFile();
    Store again(f.Options(&env, healthy), {f.config_});
    ASSERT_TRUE(again.RecoverAll().ok());
    ASSERT_EQ(f.LiveDigest(), live);
    ASSERT_EQ(f.StateFile(), state_before);
  }
  std::printf("[ crash ] %s: %d crash points exercised (old tree %d, new tree %d)\n", tc.name,
              crash_points, outcomes["old"], outcomes["new"]);
  EXPECT_GT(crash_points, 10);
}

INSTANTIATE_TEST_SUITE_P(
    AllOperations, StoreCrashTest,
    ::testing::Values(CrashCase{RootKind::kOwnedDirectory, Operation::kInstall, "OwnedInstall"},
                      CrashCase{RootKind::kOwnedDirectory, Operation::kRollback, "OwnedRollback"},
                      CrashCase{RootKind::kOwnedDirectory, Operation::kRemove, "OwnedRemove"},
                      CrashCase{RootKind::kSharedFiles, Operation::kInstall, "FilesInstall"},
                      CrashCase{RootKind::kSharedFiles, Operation::kRollback, "FilesRollback"},
                      CrashCase{RootKind::kSharedFiles, Operation::kRemove, "FilesRemove"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

class StoreFaultTest : public ::testing::TestWithParam<RootKind> {};

TEST_P(StoreFaultTest, NoSpaceOrIoErrorAtEveryOperationLeavesTheOldTree) {
  StoreFixture f(GetParam());
  int faults = 0;
  for (int err : {ENOSPC, EIO}) {
    for (int n = 1;; ++n) {
      f.Reset();
      FaultInjectionEnv env(Env::Default(), f.dir_.Sub("shadow"));
      {
        Store setup(f.Options(&env), {f.config_});
        ASSERT_TRUE(setup.Reconcile("comp").ok());
      }
      env.ResetCounter();
      // ENOSPC: the disk stays full from operation n on; EIO: operation n fails once.
      if (err == ENOSPC) {
        env.FailFromOperation(n, err);
      } else {
        env.FailOperation(n, err);
      }
      Store store(f.Options(&env), {f.config_});
      auto r = store.Install("comp", f.Request());
      int ops = env.operation_count();
      if (r.ok()) {
        // Faults after the commit point only affect housekeeping: the fix is installed.
        ASSERT_TRUE(r->committed);
        if (n > ops) break;  // no operation failed at all: every point was tried
        ASSERT_EQ(f.LiveDigest(), f.new_digest_);
        continue;
      }
      ++faults;
      ErrorCode code = r.error().code();
      ASSERT_TRUE(code == (err == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIo))
          << "op " << n << ": " << r.error().ToString();
      ASSERT_FALSE(r.error().message().empty());
      ASSERT_EQ(f.LiveDigest(), f.old_digest_) << "op " << n << ": " << r.error().ToString();
      ASSERT_TRUE(f.Leftovers().empty()) << "op " << n << ": " << f.Leftovers()[0];
    }
  }
  std::printf("[ fault ] %d failing operations exercised\n", faults);
  EXPECT_GT(faults, 20);
}

TEST_P(StoreFaultTest, RefusesEarlyWhenTheDiskIsTooFull) {
  StoreFixture f(GetParam());
  StoreOptions o = f.Options(Env::Default());
  o.space_margin_bytes = std::uint64_t{1} << 62;  // more than any disk has
  Store store(o, {f.config_});
  ASSERT_TRUE(store.Reconcile("comp").ok());
  auto r = store.Install("comp", f.Request());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNoSpace);
  EXPECT_NE(r.error().message().find("bytes free"), std::string::npos);
  EXPECT_EQ(f.LiveDigest(), f.old_digest_);
}

INSTANTIATE_TEST_SUITE_P(BothModes, StoreFaultTest,
                         ::testing::Values(RootKind::kOwnedDirectory, RootKind::kSharedFiles),
                         [](const auto& param_info) {
                           return param_info.param == RootKind::kOwnedDirectory ? "Owned" : "Files";
                         });

// kill -9 of a real process in the middle of a real install, many times.
TEST(StoreKillTest, KillNineDuringARealInstallLeavesOldOrNewTree) {
  StoreFixture f(RootKind::kOwnedDirectory);
  // A bigger tree so that the install takes long enough to be killed at many points.
  TreeSpec big_old = OldTree();
  TreeSpec big_new = NewTree();
  for (int i = 0; i < 150; ++i) {
    std::string name = "data/file" + std::to_string(i);
    big_old[name] = std::string(20000, static_cast<char>('a' + i % 26)) + std::to_string(i);
    big_new[name] = i % 3 == 0 ? big_old[name] + " changed" : big_old[name];
  }
  std::string old_tree = f.dir_.Sub("k-old"), new_tree = f.dir_.Sub("k-new");
  MakeTree(old_tree, big_old);
  MakeTree(new_tree, big_new);
  std::string patch = f.dir_.Sub("k.qpatch");
  ASSERT_TRUE(delta::BuildTreePatch(Env::Default(), old_tree, new_tree, patch, {}).ok());
  std::string old_digest = TreeDigest(old_tree), new_digest = TreeDigest(new_tree);
  InstallRequest request{patch, TreeState{"", old_digest}, TreeState{"a", new_digest}};

  auto reset = [&]() {
    (void)RemoveTree(Env::Default(), f.dir_.Sub("live"));
    (void)RemoveTree(Env::Default(), f.dir_.Sub("state"));
    MakeTree(f.config_.root, big_old);
    ASSERT_TRUE(MakeDirs(Env::Default(), f.dir_.Sub("state")).ok());
    Store s(f.Options(Env::Default()), {f.config_});
    ASSERT_TRUE(s.Reconcile("comp").ok());
  };
  auto install_in_child = [&]() -> pid_t {
    pid_t pid = ::fork();
    if (pid == 0) {
      Store s(f.Options(Env::Default()), {f.config_});
      auto r = s.Install("comp", request);
      ::_exit(r.ok() && r->committed ? 0 : 1);
    }
    return pid;
  };

  // How long an install takes here, to spread the kills over it.
  reset();
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = install_in_child();
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  ASSERT_EQ(TreeDigest(f.config_.root), new_digest);

  std::mt19937 rng(12345);
  std::uniform_int_distribution<long> delay(0, micros + micros / 5);
  int killed = 0, old_trees = 0, new_trees = 0;
  for (int round = 0; round < 40; ++round) {
    reset();
    pid = install_in_child();
    ::usleep(static_cast<useconds_t>(delay(rng)));
    if (::kill(pid, SIGKILL) == 0) ++killed;
    ::waitpid(pid, &status, 0);
    Store recovered(f.Options(Env::Default()), {f.config_});
    ASSERT_TRUE(recovered.RecoverAll().ok());
    std::string live = TreeDigest(f.config_.root);
    ASSERT_TRUE(live == old_digest || live == new_digest) << "round " << round;
    (live == old_digest ? old_trees : new_trees)++;
    ASSERT_TRUE(f.Leftovers().empty()) << "round " << round << ": " << f.Leftovers()[0];
    auto st = recovered.GetStatus("comp");
    ASSERT_TRUE(st.ok());
    ASSERT_EQ(st->current.digest, live);
  }
  std::printf("[ kill -9 ] 40 installs of %ld us, %d killed mid-way: old tree %d, new tree %d\n",
              static_cast<long>(micros), killed, old_trees, new_trees);
}

}  // namespace
}  // namespace qp::store
