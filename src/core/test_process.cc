#include "core/test_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "core/test_dir.h"

extern char** environ;

namespace qp {
namespace {

std::vector<std::string> Environment(const std::vector<std::string>& extra) {
  // `extra` replaces variables of the same name (getenv would find the first one).
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string var(*e);
    std::string name = var.substr(0, var.find('=') + 1);
    bool replaced = false;
    for (const auto& x : extra) replaced = replaced || x.compare(0, name.size(), name) == 0;
    if (!replaced) env.push_back(var);
  }
  for (const auto& x : extra) env.push_back(x);
  return env;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Starts argv with stdout and stderr appended to `log_path`.
pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
            const std::string& log_path) {
  std::vector<std::string> args = argv;
  std::vector<std::string> env = Environment(extra_env);
  auto arg_ptrs = Pointers(args);
  auto env_ptrs = Pointers(env);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0].c_str(), &actions, nullptr, arg_ptrs.data(), env_ptrs.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
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
  result.exit_code = DecodeStatus(status);
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
      status_ = DecodeStatus(status);
      return status_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  reaped_ = true;
  status_ = DecodeStatus(status);
  return status_;
}

}  // namespace qp
