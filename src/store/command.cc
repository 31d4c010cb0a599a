#include "store/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace qp::store {
namespace {

constexpr std::size_t kMaxOutput = 16 * 1024;

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::string CommandOutcome::Describe() const {
  if (timed_out) return "timed out";
  std::string last = output;
  while (!last.empty() && (last.back() == '\n' || last.back() == '\r')) last.pop_back();
  std::size_t nl = last.rfind('\n');
  if (nl != std::string::npos) last = last.substr(nl + 1);
  if (last.size() > 200) last = last.substr(0, 200) + "...";
  std::string what = exit_code > 128 ? "killed by signal " + std::to_string(exit_code - 128)
                                     : "exit status " + std::to_string(exit_code);
  return last.empty() ? what : what + ": " + last;
}

Result<CommandOutcome> RunProcess(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout,
                                  const std::vector<std::string>& extra_env) {
  if (argv.empty() || argv[0].empty()) return Error(ErrorCode::kInvalidArgument, "empty command");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe");
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const auto& x : extra_env) env_strings.push_back(x);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0].c_str(), &actions, &attr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return Error(rc == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                 "cannot run " + argv[0] + ": " + std::strerror(rc));
  }

  CommandOutcome outcome;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool open = true;
  char buf[4096];
  while (open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      outcome.timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    ssize_t got = ::read(fds[0], buf, sizeof(buf));
    if (got <= 0) {
      open = got < 0 && errno == EINTR;
      continue;
    }
    outcome.output.append(buf, static_cast<std::size_t>(got));
    if (outcome.output.size() > kMaxOutput) {
      outcome.output.erase(0, outcome.output.size() - kMaxOutput);
    }
  }
  ::close(fds[0]);
  int status = 0;
  if (outcome.timed_out) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    outcome.exit_code = DecodeStatus(status);
    return outcome;
  }
  // Output closed: the process is exiting (or closed its output); wait for it, still
  // bounded by the deadline.
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      outcome.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    ::usleep(2000);
  }
  outcome.exit_code = DecodeStatus(status);
  return outcome;
}

}  // namespace qp::store
