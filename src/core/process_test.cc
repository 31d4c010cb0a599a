// The one process runner: exit statuses, bounded output, input from memory, timeouts that
// kill the whole process group, and a clean environment.
#include "core/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <thread>

#include "core/test_dir.h"

namespace qp {
namespace {

using std::chrono::milliseconds;

ProcessSpec Shell(const std::string& script) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  return spec;
}

TEST(ProcessTest, ReportsExitStatusAndOutput) {
  auto r = RunProcess(Shell("echo hello; echo oops >&2; exit 3"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->output, "hello\noops\n");
  EXPECT_EQ(r->Describe(), "exit status 3: oops");
  auto killed = RunProcess(Shell("kill -9 $$"));
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(killed->exit_code, 128 + SIGKILL);
  EXPECT_EQ(killed->Describe(), "killed by signal 9");
}

TEST(ProcessTest, AMissingProgramIsAnErrorNotAnOutcome) {
  ProcessSpec spec;
  spec.argv = {"/nonexistent/quietpatch-test-program"};
  auto r = RunProcess(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  spec.argv = {};
  EXPECT_EQ(RunProcess(spec).error().code(), ErrorCode::kInvalidArgument);
}

TEST(ProcessTest, FeedsInputAndReadsOutputConcurrently) {
  // 4 MiB through cat: more than either pipe holds, so input and output must interleave.
  std::string data(4 << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 % 251);
  ProcessSpec spec;
  spec.argv = {"cat"};
  spec.input = std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  spec.max_output = data.size();
  spec.overflow = ProcessSpec::Overflow::kFail;
  auto r = RunProcess(spec);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_TRUE(r->ok()) << r->Describe();
  EXPECT_TRUE(r->output == data);
}

TEST(ProcessTest, AChildThatStopsReadingDoesNotHangOrKillTheCaller) {
  std::string data(8 << 20, 'x');
  ProcessSpec spec = Shell("head -c 10 >/dev/null; echo read");
  spec.input = std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  auto r = RunProcess(spec);  // no SIGPIPE here: the caller survives
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->output, "read\n");
}

TEST(ProcessTest, OutputIsBoundedTailOrFailure) {
  ProcessSpec spec = Shell("i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done");
  spec.max_output = 100;
  auto tail = RunProcess(spec);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->exit_code, 0);
  EXPECT_LE(tail->output.size(), 100u);
  EXPECT_NE(tail->output.find("line1999\n"), std::string::npos);

  spec.overflow = ProcessSpec::Overflow::kFail;
  auto fail = RunProcess(spec);
  ASSERT_TRUE(fail.ok());
  EXPECT_TRUE(fail->output_overflowed);
  EXPECT_FALSE(fail->ok());
}

TEST(ProcessTest, ATimeoutKillsTheWholeProcessGroup) {
  // The child starts a grandchild that would outlive it and keep the output open.
  ProcessSpec spec = Shell("sleep 30 & sleep 30");
  spec.timeout = milliseconds(200);
  auto start = std::chrono::steady_clock::now();
  auto r = RunProcess(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->Describe(), "timed out");
  // Both sleeps are gone: had the grandchild survived, reading its output would not end.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(ProcessTest, EnvironmentIsAddedToOrReplaced) {
  ::setenv("QP_PROCESS_TEST_INHERITED", "yes", 1);
  ProcessSpec spec = Shell("echo \"$QP_PROCESS_TEST_INHERITED/$QP_EXTRA\"");
  spec.env = {"QP_EXTRA=1"};
  EXPECT_EQ(RunProcess(spec)->output, "yes/1\n");
  spec.env = {"QP_EXTRA=2", "PATH=/usr/bin:/bin"};
  spec.clean_env = true;
  EXPECT_EQ(RunProcess(spec)->output, "/2\n");
  ::unsetenv("QP_PROCESS_TEST_INHERITED");
}

// RunningProcess: input written in pieces while the program runs (delta's gzip records).
TEST(RunningProcessTest, InputFedInPiecesMeetsOutputReadMeanwhile) {
  // 4 MiB in 1,024 pieces through cat: more than the pipes hold, so output must be read
  // between the pieces.
  std::string data(4 << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 % 251);
  ProcessSpec spec;
  spec.argv = {"cat"};
  spec.max_output = data.size();
  spec.overflow = ProcessSpec::Overflow::kFail;
  auto run = RunningProcess::Start(spec);
  ASSERT_TRUE(run.ok()) << run.error().ToString();
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(data.data());
  for (std::size_t at = 0; at < data.size(); at += 4096) {
    ASSERT_TRUE((*run)->Write(std::span(bytes + at, 4096)).ok());
  }
  auto r = (*run)->Finish();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_TRUE(r->ok()) << r->Describe();
  EXPECT_TRUE(r->output == data);
}

TEST(RunningProcessTest, InputAProgramNoLongerReadsIsDroppedAndItsExitTells) {
  ProcessSpec spec = Shell("head -c 10 >/dev/null; echo read; exit 4");
  auto run = RunningProcess::Start(spec);
  ASSERT_TRUE(run.ok());
  const std::string piece(1 << 20, 'x');
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(piece.data());
  for (int i = 0; i < 8; ++i) EXPECT_TRUE((*run)->Write(std::span(bytes, piece.size())).ok());
  auto r = (*run)->Finish();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_EQ(r->output, "read\n");
}

TEST(RunningProcessTest, WritesFailOnceTimeIsUpAndFinishSaysSo) {
  ProcessSpec spec = Shell("sleep 30");  // never reads its input
  spec.timeout = milliseconds(200);
  auto run = RunningProcess::Start(spec);
  ASSERT_TRUE(run.ok());
  const std::string piece(1 << 20, 'x');
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(piece.data());
  Status s = OkStatus();
  for (int i = 0; i < 16 && s.ok(); ++i) s = (*run)->Write(std::span(bytes, piece.size()));
  ASSERT_FALSE(s.ok());  // 16 MiB do not fit in a socket's buffer
  EXPECT_FALSE((*run)->Write(std::span(bytes, 1)).ok());
  auto r = (*run)->Finish();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
}

TEST(RunningProcessTest, OneDroppedUnfinishedIsKilledAndReaped) {
  TestDir dir;
  const std::string pid_file = dir.path() + "/pid";
  pid_t pid = 0;
  {
    auto run = RunningProcess::Start(Shell("echo $$ > " + pid_file + "; exec sleep 30"));
    ASSERT_TRUE(run.ok());
    for (int i = 0; i < 1000 && pid == 0; ++i) {
      std::ifstream in(pid_file);
      if (!(in >> pid)) pid = 0;
      if (pid == 0) std::this_thread::sleep_for(milliseconds(10));
    }
    ASSERT_GT(pid, 0) << "the program did not start";
  }
  // Gone, not a zombie: no process has its pid any more.
  EXPECT_NE(::kill(pid, 0), 0);
  EXPECT_EQ(errno, ESRCH);
}

}  // namespace
}  // namespace qp
