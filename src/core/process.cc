#include "core/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace qp {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::vector<std::string> ChildEnvironment(const ProcessSpec& spec) {
  if (spec.clean_env) return spec.env;
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string var(*e);
    std::string name = var.substr(0, var.find('=') + 1);
    bool replaced = std::any_of(spec.env.begin(), spec.env.end(), [&](const std::string& x) {
      return x.compare(0, name.size(), name) == 0;
    });
    if (!replaced) out.push_back(std::move(var));
  }
  out.insert(out.end(), spec.env.begin(), spec.env.end());
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// posix_spawn with the given file actions, in a new process group.
Result<pid_t> Spawn(const ProcessSpec& spec, posix_spawn_file_actions_t* actions) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return Error(ErrorCode::kInvalidArgument, "empty command");
  }
  std::vector<std::string> args = spec.argv, env = ChildEnvironment(spec);
  auto argp = Pointers(args), envp = Pointers(env);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0].c_str(), actions, &attr, argp.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Error(rc == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                 "cannot run " + spec.argv[0] + ": " + std::strerror(rc));
  }
  return pid;
}

// Waits for `pid` until `deadline`; kills its group then. Returns the waitpid status.
int Reap(pid_t pid, Clock* clock, std::chrono::steady_clock::time_point deadline, bool* timed_out) {
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return status;
    if (clock->Monotonic() >= deadline) {
      *timed_out = true;
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string ProcessResult::Describe() const {
  if (timed_out) return "timed out";
  if (output_overflowed) return "wrote more output than allowed";
  std::string last = output;
  while (!last.empty() && (last.back() == '\n' || last.back() == '\r')) last.pop_back();
  std::size_t nl = last.rfind('\n');
  if (nl != std::string::npos) last = last.substr(nl + 1);
  if (last.size() > 200) last = last.substr(0, 200) + "...";
  std::string what = exit_code > 128 ? "killed by signal " + std::to_string(exit_code - 128)
                                     : "exit status " + std::to_string(exit_code);
  return last.empty() ? what : what + ": " + last;
}

Result<ProcessResult> RunProcess(const ProcessSpec& spec, Clock* clock) {
  // Input through a socket, so that writing to a child that died fails with EPIPE instead
  // of raising SIGPIPE here; output through a pipe.
  int in_pair[2] = {-1, -1}, out_pipe[2];
  if (!spec.input.empty() &&
      ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, in_pair) != 0) {
    return ErrnoError(errno, "socketpair");
  }
  Fd in_parent(in_pair[0]), in_child(in_pair[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe");
  Fd out_parent(out_pipe[0]), out_child(out_pipe[1]);
  if (!spec.input.empty()) {
    // The child's end must block as usual.
    ::fcntl(in_child.get(), F_SETFL, ::fcntl(in_child.get(), F_GETFL) & ~O_NONBLOCK);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (spec.input.empty()) {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  } else {
    posix_spawn_file_actions_adddup2(&actions, in_child.get(), 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out_child.get(), 1);
  if (spec.capture_stderr) {
    posix_spawn_file_actions_adddup2(&actions, out_child.get(), 2);
  } else {
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  auto pid = Spawn(spec, &actions);
  posix_spawn_file_actions_destroy(&actions);
  in_child.Reset();
  out_child.Reset();
  if (!pid.ok()) return pid.error();

  ProcessResult result;
  const auto deadline = clock->Monotonic() + spec.timeout;
  std::size_t written = 0;
  if (spec.input.empty()) in_parent.Reset();
  bool output_open = true;
  char buf[64 * 1024];
  while (output_open) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock->Monotonic());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_parent.get(), POLLIN, 0}, {in_parent.get(), POLLOUT, 0}};
    int n = ::poll(fds, in_parent.get() >= 0 ? 2 : 1,
                   static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) return ErrnoError(errno, "poll");
    if (n <= 0) continue;
    if (in_parent.get() >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      ssize_t w =
          ::send(in_parent.get(), spec.input.data() + written,
                 std::min<std::size_t>(spec.input.size() - written, sizeof(buf)), MSG_NOSIGNAL);
      if (w > 0) written += static_cast<std::size_t>(w);
      // All written, or the child stopped reading: close its input.
      if (written == spec.input.size() || (w < 0 && errno != EAGAIN && errno != EINTR)) {
        in_parent.Reset();
      }
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    ssize_t got = ::read(out_parent.get(), buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      output_open = false;
      continue;
    }
    result.output.append(buf, static_cast<std::size_t>(got));
    if (result.output.size() > spec.max_output) {
      if (spec.overflow == ProcessSpec::Overflow::kFail) {
        result.output_overflowed = true;
        break;
      }
      result.output.erase(0, result.output.size() - spec.max_output);
    }
  }
  in_parent.Reset();
  out_parent.Reset();
  if (result.timed_out || result.output_overflowed) ::kill(-*pid, SIGKILL);
  bool reap_timed_out = false;
  result.exit_code = DecodeWaitStatus(Reap(*pid, clock, deadline, &reap_timed_out));
  result.timed_out = result.timed_out || reap_timed_out;
  return result;
}

Result<pid_t> StartProcess(const ProcessSpec& spec, const std::string& output_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  auto pid = Spawn(spec, &actions);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

}  // namespace qp
