// The store's behaviour, in both activation modes: install, health-check rollback,
// removal, refusal of wrong patches, modified-component detection, supersession, history.
#include "store/store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <set>

#include "core/fault_env.h"
#include "core/read_counting_env.h"
#include "store/store_test_util.h"

namespace qp::store {
namespace {

class StoreTest : public ::testing::TestWithParam<RootKind> {
 protected:
  StoreFixture f_{GetParam()};
};

TEST_P(StoreTest, InstallsThenRemovesBackToTheBase) {
  Store store(f_.Options(Env::Default()), {f_.config_});
  auto st = store.Reconcile("comp");
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_EQ(st->base_version, "1.0");
  EXPECT_EQ(st->current.label, "");
  EXPECT_EQ(st->current.digest, f_.old_digest_);

  auto r = store.Install("comp", f_.Request());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->committed);
  EXPECT_EQ(f_.LiveDigest(), f_.new_digest_);
  EXPECT_TRUE(f_.Leftovers().empty());
  st = store.GetStatus("comp");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->current.label, "a");
  ASSERT_TRUE(st->previous.has_value());
  EXPECT_EQ(st->previous->label, "");
  EXPECT_FALSE(st->modified);

  ASSERT_TRUE(store.Remove("comp", "asked by the person at the device").ok());
  EXPECT_EQ(f_.LiveDigest(), f_.old_digest_);
  st = store.GetStatus("comp");
  EXPECT_EQ(st->current.label, "");
  EXPECT_FALSE(st->previous.has_value());
  EXPECT_EQ(store.Remove("comp", "again").error().code(), ErrorCode::kNotFound);

  auto history = store.History("comp");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].op, "install");
  EXPECT_EQ((*history)[0].result, "committed");
  EXPECT_EQ((*history)[0].to, "a");
  EXPECT_EQ((*history)[1].op, "remove");
  EXPECT_EQ((*history)[1].reason, "asked by the person at the device");
}

TEST_P(StoreTest, FailedHealthCheckRollsBackAndSaysWhy) {
  Store store(f_.Options(Env::Default(), /*healthy=*/false), {f_.config_});
  ASSERT_TRUE(store.Reconcile("comp").ok());
  auto r = store.Install("comp", f_.Request());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(r->committed);
  EXPECT_TRUE(r->rolled_back);
  EXPECT_EQ(r->reason, "health check failed: exit status 1: self-test failed: handshake error");
  EXPECT_EQ(f_.LiveDigest(), f_.old_digest_);
  EXPECT_TRUE(f_.Leftovers().empty());
  auto st = store.GetStatus("comp");
  EXPECT_EQ(st->current.label, "");
  auto history = store.History("comp");
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].result, "rolled_back");
  EXPECT_EQ((*history)[0].reason, r->reason);
}

TEST_P(StoreTest, RefusesPatchesForAnotherStateAndCorruptPatches) {
  Store store(f_.Options(Env::Default()), {f_.config_});
  ASSERT_TRUE(store.Reconcile("comp").ok());
  InstallRequest wrong_from = f_.Request();
  wrong_from.from.label = "a";
  EXPECT_EQ(store.Install("comp", wrong_from).error().code(), ErrorCode::kInvalidArgument);
  InstallRequest wrong_digest = f_.Request();
  wrong_digest.to.digest = std::string(64, '0');
  EXPECT_EQ(store.Install("comp", wrong_digest).error().code(), ErrorCode::kVerificationFailed);

  std::string corrupt = f_.dir_.Sub("corrupt.qpatch");
  std::string bytes = ReadTestFile(f_.patch_);
  bytes[bytes.size() - 10] ^= 0x55;
  WriteTestFile(corrupt, bytes);
  InstallRequest bad = f_.Request();
  bad.patch_path = corrupt;
  auto r = store.Install("comp", bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(f_.LiveDigest(), f_.old_digest_);
  EXPECT_TRUE(f_.Leftovers().empty());
  EXPECT_EQ(store.GetStatus("comp")->current.label, "");
}

// Each live file is read at most twice from the check's first look to the committed
// install (the check's hash, then the patch applied to it), and status reads none of them.
TEST_P(StoreTest, ACheckAndAnInstallReadEachLiveFileAtMostTwice) {
  ReadCountingEnv env(Env::Default());
  Store store(f_.Options(&env), {f_.config_});
  std::vector<std::pair<std::string, std::uint64_t>> live;  // regular files of the old version
  const TreeSpec spec = GetParam() == RootKind::kOwnedDirectory ? OldTree() : OldFiles();
  for (const auto& [path, content] : spec) {
    if (content.rfind("->", 0) == 0) continue;
    std::string full =
        GetParam() == RootKind::kOwnedDirectory
            ? JoinPath(f_.config_.root, path)
            : f_.config_
                  .files[static_cast<std::size_t>(std::distance(spec.begin(), spec.find(path)))];
    live.emplace_back(full, content.size());
  }
  ASSERT_TRUE(store.Reconcile("comp").ok());
  auto r = store.Install("comp", f_.Request());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_TRUE(r->committed);
  for (const auto& [path, size] : live) {
    EXPECT_LE(env.BytesRead(path), 2 * size)
        << path << ": read " << env.BytesRead(path) << " bytes, size " << size;
    EXPECT_GE(env.BytesRead(path), size) << path << " was never hashed";
  }
  env.Reset();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store.GetStatus("comp").ok());
  for (const auto& [path, size] : live) EXPECT_EQ(env.BytesRead(path), 0u) << path;
}

TEST_P(StoreTest, AnInstallNeverReadsBackWhatItWrote) {
  // The patch engine hashes each new file as it writes it: no staged tree, no view of the
  // live files, no .qp-new file is read again.
  ReadCountingEnv env(Env::Default());
  Store store(f_.Options(&env), {f_.config_});
  ASSERT_TRUE(store.Reconcile("comp").ok());
  env.Reset();
  auto r = store.Install("comp", f_.Request());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_TRUE(r->committed);
  std::set<std::string> live_files;
  if (GetParam() == RootKind::kSharedFiles) {
    live_files.insert(f_.config_.files.begin(), f_.config_.files.end());
  }
  const std::string state_dir = f_.Options(&env).state_dir + "/";
  for (const auto& path : env.PathsRead()) {
    if (path == f_.Request().patch_path || path.starts_with(state_dir)) continue;
    bool live = GetParam() == RootKind::kOwnedDirectory ? path.starts_with(f_.config_.root + "/")
                                                        : live_files.count(path) != 0;
    EXPECT_TRUE(live) << "the install read " << path << " (" << env.BytesRead(path) << " bytes)";
  }
}

// Bytes read of each live file by one install, with `hold_bytes` of the patch's sources
// kept in memory from their hashing to the patch; and the file sizes before it.
struct LiveReads {
  std::map<std::string, std::uint64_t> read, size;
};
LiveReads InstallCountingReads(StoreFixture& f, std::uint64_t hold_bytes) {
  ReadCountingEnv env(Env::Default());
  StoreOptions options = f.Options(&env);
  options.held_source_bytes = hold_bytes;
  Store store(options, {f.config_});
  EXPECT_TRUE(store.Reconcile("comp").ok());
  LiveReads out;
  const std::string state_dir = options.state_dir + "/";
  env.Reset();
  std::vector<std::string> live = f.config_.files;
  if (f.config_.kind == RootKind::kOwnedDirectory) {
    live.clear();
    auto tree = delta::ScanTree(Env::Default(), f.config_.root);
    EXPECT_TRUE(tree.ok());
    if (!tree.ok()) return {};
    for (const auto& e : *tree) {
      if (e.type == delta::EntryType::kFile) live.push_back(JoinPath(f.config_.root, e.path));
    }
  }
  for (const auto& path : live) out.size[path] = Env::Default()->Stat(path)->size;
  auto r = store.Install("comp", f.Request());
  EXPECT_TRUE(r.ok() && r->committed);
  for (const auto& path : env.PathsRead()) {
    if (path != f.Request().patch_path && !path.starts_with(state_dir)) {
      out.read[path] = env.BytesRead(path);
    }
  }
  return out;
}

TEST_P(StoreTest, AnInstallReadsEachLiveFileFromDiskOnce) {
  LiveReads reads = InstallCountingReads(f_, 32u << 20);
  ASSERT_FALSE(reads.read.empty());
  for (const auto& [path, n] : reads.read) {
    ASSERT_EQ(reads.size.count(path), 1u) << path << " is not a live file";
    EXPECT_EQ(n, reads.size[path]) << path;
  }
}

TEST_P(StoreTest, PastTheHoldBudgetADeltaSourceIsReadAgain) {
  LiveReads reads = InstallCountingReads(f_, 0);
  std::size_t twice = 0;
  for (const auto& [path, n] : reads.read) twice += n > reads.size[path] ? 1 : 0;
  EXPECT_GT(twice, 0u) << "no delta source was read a second time: the fixture lost its deltas";
}

TEST_P(StoreTest, DetectsFilesModifiedBehindItsBackAndDoesNotPatchThem) {
  Store store(f_.Options(Env::Default()), {f_.config_});
  ASSERT_TRUE(store.Reconcile("comp").ok());
  std::string victim = GetParam() == RootKind::kOwnedDirectory
                           ? JoinPath(f_.config_.root, "bin/tool")
                           : f_.config_.files[0];
  WriteTestFile(victim, "locally patched by someone");
  EXPECT_FALSE(store.GetStatus("comp")->modified);  // no rehash: as of the last comparison
  auto st = store.Verify("comp");
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->modified);
  EXPECT_TRUE(store.GetStatus("comp")->modified);
  EXPECT_NE(st->modified_reason.find("modified outside quietpatch"), std::string::npos);
  auto r = store.Install("comp", f_.Request());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_EQ(ReadTestFile(victim), "locally patched by someone");
}

TEST_P(StoreTest, NewBaseVersionSupersedesImprovementsAndTheirRollbackCopies) {
  {
    Store store(f_.Options(Env::Default()), {f_.config_});
    ASSERT_TRUE(store.Reconcile("comp").ok());
    ASSERT_TRUE(store.Install("comp", f_.Request())->committed);
  }
  // The next full update installs version 2.0 of the component over it.
  f_.config_.base_version.literal = "2.0";
  std::string some_file = GetParam() == RootKind::kOwnedDirectory
                              ? JoinPath(f_.config_.root, "bin/tool")
                              : f_.config_.files[0];
  WriteTestFile(some_file, "version 2.0 from the package manager");
  Store store(f_.Options(Env::Default()), {f_.config_});
  auto st = store.Reconcile("comp");
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_EQ(st->base_version, "2.0");
  EXPECT_EQ(st->current.label, "");
  ASSERT_TRUE(st->superseded.has_value());
  EXPECT_EQ(*st->superseded, (Supersession{"1.0", f_.Request().to.label, "base version 2.0"}));
  EXPECT_FALSE(st->previous.has_value());
  EXPECT_FALSE(st->modified);
  if (GetParam() == RootKind::kOwnedDirectory) {
    EXPECT_FALSE(TestPathExists(f_.config_.root + ".qp-previous"));
  } else {
    for (const auto& file : f_.config_.files) {
      EXPECT_FALSE(TestPathExists(JoinPath(DirName(file), "." + BaseName(file) + ".qp-previous")));
    }
  }
  auto history = store.History("comp");
  EXPECT_EQ(history->back().result, "superseded");
  EXPECT_EQ(history->back().reason, "base version 1.0 -> 2.0");
  // The old base's patch no longer applies.
  EXPECT_FALSE(store.Install("comp", f_.Request()).ok());
}

TEST_P(StoreTest, HistoryIsBounded) {
  StoreOptions o = f_.Options(Env::Default());
  o.history_limit = 3;
  Store store(o, {f_.config_});
  ASSERT_TRUE(store.Reconcile("comp").ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(store.Install("comp", f_.Request())->committed);
    ASSERT_TRUE(store.Remove("comp", "round " + std::to_string(i)).ok());
  }
  auto history = store.History("comp");
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ(history->back().reason, "round 2");
}

INSTANTIATE_TEST_SUITE_P(BothModes, StoreTest,
                         ::testing::Values(RootKind::kOwnedDirectory, RootKind::kSharedFiles),
                         [](const auto& param_info) {
                           return param_info.param == RootKind::kOwnedDirectory ? "Owned" : "Files";
                         });

TEST(StoreBaseVersionTest, ReadsTheBaseVersionFromAFileOrACommand) {
  StoreFixture f(RootKind::kOwnedDirectory);
  WriteTestFile(f.dir_.Sub("VERSION"), "  3.0.17-1~deb12u2 \nrest ignored\n");
  f.config_.base_version.kind = BaseVersionSource::Kind::kFile;
  f.config_.base_version.file = f.dir_.Sub("VERSION");
  {
    Store store(f.Options(Env::Default()), {f.config_});
    EXPECT_EQ(store.Reconcile("comp")->base_version, "3.0.17-1~deb12u2");
  }
  f.Reset();
  f.config_.base_version.kind = BaseVersionSource::Kind::kCommand;
  f.config_.base_version.command = {"sh", "-c", "printf '3.0.22-1~deb12u2'"};
  StoreOptions o = f.Options(Env::Default());
  o.run_command = RunProcess;
  Store store(o, {f.config_});
  EXPECT_EQ(store.Reconcile("comp")->base_version, "3.0.22-1~deb12u2");
}

}  // namespace
}  // namespace qp::store

namespace qp::store {
namespace {

// A component that is a Debian package, with dpkg's database in the test directory.
class StorePackageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    f_.config_.package = "libcomp";
    f_.config_.base_version = BaseVersionSource{BaseVersionSource::Kind::kPackage, "", "", {}};
    SetStatus("1.0");
    RecordFilesAsDpkg();
  }
  void SetStatus(const std::string& version, const std::string& status = "install ok installed") {
    WriteDpkgDatabase(admin_.path(), DpkgStanzaText("libcomp", "amd64", status, version));
  }
  StoreOptions Options() {
    StoreOptions o = f_.Options(Env::Default());
    o.dpkg_admin_dir = admin_.path();
    o.dpkg_lock_wait = std::chrono::milliseconds(0);
    return o;
  }
  // dpkg's records of the component's files as they are now: the file list and md5sums
  // that dpkg-query -L and --control-show read.
  void RecordFilesAsDpkg() {
    std::string list, sums;
    for (const auto& f : f_.config_.files) {
      std::string content = ReadTestFile(f);
      unsigned char md[EVP_MAX_MD_SIZE];
      std::size_t len = 0;
      ASSERT_EQ(EVP_Q_digest(nullptr, "MD5", nullptr, content.data(), content.size(), md, &len), 1);
      list += f + "\n";
      sums += HexEncode(std::span<const std::uint8_t>(md, len)) + "  " + f.substr(1) + "\n";
    }
    WriteTestFile(admin_.Sub("info/libcomp:amd64.list"), list);
    WriteTestFile(admin_.Sub("info/libcomp:amd64.md5sums"), sums);
  }
  StoreFixture f_{RootKind::kSharedFiles};
  TestDir admin_;
};

// Holds dpkg's frontend lock from another process (fcntl locks are per process), as apt
// does while it runs, until destroyed.
class LockHolder {
 public:
  explicit LockHolder(const std::string& path) {
    int ready[2], release[2];
    EXPECT_EQ(::pipe(ready), 0);
    EXPECT_EQ(::pipe(release), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      ::close(release[1]);  // else the child's own copy keeps the pipe open
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0640);
      struct flock lock {};
      lock.l_type = F_WRLCK;
      lock.l_whence = SEEK_SET;
      char byte = fd >= 0 && ::fcntl(fd, F_SETLKW, &lock) == 0 ? 'y' : 'n';
      (void)!::write(ready[1], &byte, 1);
      (void)!::read(release[0], &byte, 1);  // until the parent closes its end
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(release[0]);
    char byte = 'n';
    EXPECT_EQ(::read(ready[0], &byte, 1), 1);
    EXPECT_EQ(byte, 'y');
    ::close(ready[0]);
    release_ = release[1];
  }
  ~LockHolder() {
    ::close(release_);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int release_ = -1;
};

TEST_F(StorePackageTest, WhileAptOrDpkgRunsThePackagesFilesAreLeftToIt) {
  Store store(Options(), {f_.config_});
  ASSERT_TRUE(store.Reconcile("comp").ok());
  const std::string before = f_.LiveDigest();
  {
    LockHolder apt(admin_.Sub("lock-frontend"));
    auto r = store.Install("comp", f_.Request());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(r.error().message().find("apt or dpkg is running"), std::string::npos)
        << r.error().ToString();
    EXPECT_NE(r.error().message().find("pid " + std::to_string(apt.pid())), std::string::npos)
        << r.error().ToString();
    EXPECT_EQ(f_.LiveDigest(), before);
    EXPECT_TRUE(f_.Leftovers().empty());
  }
  auto r = store.Install("comp", f_.Request());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->committed);
}

TEST_F(StorePackageTest, AnUpgradeByAptSupersedesTheImprovement) {
  {
    Store store(Options(), {f_.config_});
    ASSERT_TRUE(store.Reconcile("comp").ok());
    ASSERT_TRUE(store.Install("comp", f_.Request())->committed);
    EXPECT_EQ(store.GetStatus("comp")->base_version, "1.0");
  }
  // dpkg unpacks version 2.0 over the files and records it.
  for (const auto& f : f_.config_.files) WriteTestFile(f, "from the 2.0 package: " + f);
  SetStatus("2.0");
  RecordFilesAsDpkg();
  Store store(Options(), {f_.config_});
  auto st = store.Reconcile("comp");
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_EQ(st->base_version, "2.0");
  EXPECT_EQ(st->current.label, "");
  ASSERT_TRUE(st->superseded.has_value());
  EXPECT_EQ(*st->superseded, (Supersession{"1.0", f_.Request().to.label, "libcomp 2.0"}));
  EXPECT_FALSE(st->previous.has_value());
  EXPECT_FALSE(st->modified);
  EXPECT_TRUE(f_.Leftovers().empty());
  // Half-installed: no base version to speak of, and the store says why.
  SetStatus("2.0", "install reinstreq half-installed");
  auto half = store.Reconcile("comp");
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.error().message().find("half-installed"), std::string::npos);
}

TEST_F(StorePackageTest, FilesUnlikeDpkgsAtFirstSightAreLeftAloneUntilTheyAreDpkgsAgain) {
  const std::string first = f_.config_.files.front();
  const std::string dpkgs = ReadTestFile(first);
  WriteTestFile(first, "changed by hand before quietpatch came");
  Store store(Options(), {f_.config_});
  auto st = store.Reconcile("comp");
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_TRUE(st->modified);
  EXPECT_NE(st->modified_reason.find("differ from dpkg's md5sums"), std::string::npos)
      << st->modified_reason;
  auto refused = store.Install("comp", f_.Request());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.error().message().find("dpkg's md5sums"), std::string::npos);
  EXPECT_EQ(ReadTestFile(first), "changed by hand before quietpatch came");
  // dpkg puts its file back (apt install --reinstall): the files are the base.
  WriteTestFile(first, dpkgs);
  st = store.Reconcile("comp");
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_FALSE(st->modified) << st->modified_reason;
  auto r = store.Install("comp", f_.Request());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->committed);
}

TEST_F(StorePackageTest, AReinstallByDpkgSupersedesTheImprovementAndStatusShowsDpkgsSums) {
  std::map<std::string, std::string> dpkgs;
  for (const auto& f : f_.config_.files) dpkgs[f] = ReadTestFile(f);
  Store store(Options(), {f_.config_});
  ASSERT_TRUE(store.Reconcile("comp").ok());
  auto none = store.DifferencesFromDpkg("comp");
  ASSERT_TRUE(none.ok()) << none.error().ToString();
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(store.Install("comp", f_.Request())->committed);
  // Every file the improvement changed, with dpkg's sum and the one of the file now.
  auto changed = store.DifferencesFromDpkg("comp");
  ASSERT_TRUE(changed.ok()) << changed.error().ToString();
  ASSERT_FALSE(changed->empty());
  for (const auto& d : *changed) {
    EXPECT_NE(dpkgs.at(d.path), ReadTestFile(d.path)) << d.path;
    EXPECT_EQ(d.dpkg_md5.size(), 32u);
    EXPECT_EQ(d.live_md5.size(), 32u);
    EXPECT_NE(d.dpkg_md5, d.live_md5);
  }
  // Changed behind the store's back, not to dpkg's files: modified, still claimed.
  const std::string first = f_.config_.files.front();
  WriteTestFile(first, "someone else's bytes");
  auto st = store.Reconcile("comp");
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_TRUE(st->modified);
  EXPECT_EQ(st->current.label, f_.Request().to.label);
  // dpkg -i of the same version: dpkg's files again; the store no longer claims them.
  for (const auto& [path, content] : dpkgs) WriteTestFile(path, content);
  st = store.Reconcile("comp");
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_FALSE(st->modified);
  EXPECT_EQ(st->base_version, "1.0");
  EXPECT_EQ(st->current.label, "");
  EXPECT_FALSE(st->previous.has_value());
  ASSERT_TRUE(st->superseded.has_value());
  EXPECT_EQ(*st->superseded,
            (Supersession{"1.0", f_.Request().to.label, "libcomp 1.0 reinstalled by dpkg"}));
  EXPECT_TRUE(f_.Leftovers().empty());
  EXPECT_TRUE(store.DifferencesFromDpkg("comp")->empty());
  EXPECT_EQ(store.History("comp")->back().result, "superseded");
  // Remembered across restarts of the agent, until the next install.
  Store again(Options(), {f_.config_});
  ASSERT_TRUE(again.Reconcile("comp").ok());
  EXPECT_TRUE(again.GetStatus("comp")->superseded.has_value());
  ASSERT_TRUE(again.Install("comp", f_.Request())->committed);
  EXPECT_FALSE(again.GetStatus("comp")->superseded.has_value());
}

TEST_F(StorePackageTest, AnInterruptedInstallIsFinishedUnderDpkgsLock) {
  const std::string before = f_.LiveDigest();
  FaultInjectionEnv crashing(Env::Default(), f_.dir_.Sub("shadow"));
  {
    StoreOptions o = Options();
    o.env = &crashing;
    Store store(o, {f_.config_});
    ASSERT_TRUE(store.Reconcile("comp").ok());
    crashing.ResetCounter();
    crashing.CrashAtOperation(12);  // staging, past the journal's first save
    auto r = store.Install("comp", f_.Request());
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.error().code(), ErrorCode::kCrashed) << r.error().ToString();
  }
  ASSERT_NE(f_.StateFile().find("\"phase\""), std::string::npos)
      << "the crash came before the journal was written";
  {
    LockHolder apt(admin_.Sub("lock-frontend"));
    Store store(Options(), {f_.config_});
    EXPECT_TRUE(store.RecoverAll().ok());  // left for later: apt is running
    auto st = store.Reconcile("comp");
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(st.error().message().find("apt or dpkg is running"), std::string::npos);
  }
  Store store(Options(), {f_.config_});
  ASSERT_TRUE(store.RecoverAll().ok());
  auto st = store.Reconcile("comp");
  ASSERT_TRUE(st.ok()) << st.error().ToString();
  EXPECT_EQ(st->current.label, "");
  EXPECT_FALSE(st->modified);
  EXPECT_EQ(f_.LiveDigest(), before);
  EXPECT_TRUE(f_.Leftovers().empty());
}

}  // namespace
}  // namespace qp::store
