#include "core/test_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "core/process.h"
#include "core/test_dir.h"

namespace qp {
namespace {

// Starts argv (core's process runner: its own process group, stdin from /dev/null) with
// stdout and stderr appended to `log_path`.
pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
            const std::string& log_path) {
  ProcessSpec spec;
  spec.argv = argv;
  spec.env = extra_env;
  auto pid = StartProcess(spec, log_path);
  if (!pid.ok()) throw std::runtime_error(pid.error().ToString());
  return *pid;
}

std::string TempLogPath() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base ? base : "/tmp") + "/qp-proc-XXXXXX";
  int fd = ::mkstemp(templ.data());
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  ::close(fd);
  return templ;
}

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& extra_env) {
  std::string log = TempLogPath();
  pid_t pid = Spawn(argv, extra_env, log);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  CommandResult result;
  result.exit_code = DecodeWaitStatus(status);
  result.output = ReadTestFile(log);
  ::unlink(log.c_str());
  return result;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv,
                                     const std::vector<std::string>& extra_env)
    : log_path_(TempLogPath()) {
  pid_ = Spawn(argv, extra_env, log_path_);
}

BackgroundProcess::~BackgroundProcess() {
  if (!reaped_) Stop(SIGTERM);
  ::unlink(log_path_.c_str());
}

std::string BackgroundProcess::Output() const { return ReadTestFile(log_path_); }

std::string BackgroundProcess::WaitForOutput(const std::string& needle, int timeout_ms) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string out = Output();
    if (out.find(needle) != std::string::npos) return out;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
}

int BackgroundProcess::Stop(int signal) {
  if (reaped_) return status_;
  ::kill(pid_, signal);
  int status = 0;
  // Give it five seconds to go, then insist.
  for (int i = 0; i < 500; ++i) {
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = DecodeWaitStatus(status);
      return status_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  reaped_ = true;
  status_ = DecodeWaitStatus(status);
  return status_;
}

}  // namespace qp
