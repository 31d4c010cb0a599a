// The one process runner: exit statuses, bounded output, input from memory, timeouts that
// kill the whole process group, and a clean environment.
#include "core/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <string>

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

}  // namespace
}  // namespace qp
