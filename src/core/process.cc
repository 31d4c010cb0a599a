#include "core/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

// Waits for `pid` until `deadline`; kills its group then. Returns the waitpid status. The
// wait is on a pidfd (readable when the process exits), so an exit is seen at once.
int Reap(pid_t pid, Clock* clock, std::chrono::steady_clock::time_point deadline, bool* timed_out) {
  Fd exited(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return status;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock->Monotonic());
    if (left.count() <= 0) {
      *timed_out = true;
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    if (exited.get() >= 0) {
      pollfd p{exited.get(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    } else {  // no pidfd (a kernel before 5.3, or a sandbox that refuses it)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
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

RunningProcess::RunningProcess(const ProcessSpec& spec, Clock* clock)
    : clock_(clock),
      deadline_(clock->Monotonic() + spec.timeout),
      max_output_(spec.max_output),
      overflow_(spec.overflow) {}

RunningProcess::~RunningProcess() {
  if (in_ >= 0) ::close(in_);
  if (out_ >= 0) ::close(out_);
  if (pid_ > 0 && !reaped_) {
    ::kill(-pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

Result<std::unique_ptr<RunningProcess>> RunningProcess::Start(const ProcessSpec& spec,
                                                              Clock* clock) {
  return StartWith(spec, clock, true);
}

Result<std::unique_ptr<RunningProcess>> RunningProcess::StartWith(const ProcessSpec& spec,
                                                                  Clock* clock, bool input) {
  std::unique_ptr<RunningProcess> p(new RunningProcess(spec, clock));
  // Input through a socket, so that writing to a child that died fails with EPIPE instead
  // of raising SIGPIPE here; output through a pipe.
  int in_pair[2] = {-1, -1}, out_pipe[2];
  if (input && ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, in_pair) != 0) {
    return ErrnoError(errno, "socketpair");
  }
  p->in_ = in_pair[0];
  Fd in_child(in_pair[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe");
  p->out_ = out_pipe[0];
  Fd out_child(out_pipe[1]);
  if (input) {
    // The child's end must block as usual.
    ::fcntl(in_child.get(), F_SETFL, ::fcntl(in_child.get(), F_GETFL) & ~O_NONBLOCK);
  }
  // Room for the output a bound admits (up to 1 MB, the unprivileged limit): the program
  // need not wait for us to read while we make its input. Best effort.
  ::fcntl(p->out_, F_SETPIPE_SZ,
          static_cast<int>(std::clamp<std::size_t>(spec.max_output, 64 * 1024, 1 << 20)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (input) {
    posix_spawn_file_actions_adddup2(&actions, in_child.get(), 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out_child.get(), 1);
  if (spec.capture_stderr) {
    posix_spawn_file_actions_adddup2(&actions, out_child.get(), 2);
  } else {
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  auto pid = Spawn(spec, &actions);
  posix_spawn_file_actions_destroy(&actions);
  if (!pid.ok()) return pid.error();
  p->pid_ = *pid;
  return p;
}

Status RunningProcess::Pump(std::span<const std::uint8_t> data, bool to_end) {
  if (result_.timed_out) return Error(ErrorCode::kIo, "timed out");
  if (result_.output_overflowed)
    return Error(ErrorCode::kTooLarge, "wrote more output than allowed");
  std::size_t written = 0;
  char buf[64 * 1024];
  for (;;) {
    const bool writing = in_ >= 0 && written < data.size();
    if (!writing && (!to_end || out_ < 0)) return OkStatus();
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - clock_->Monotonic());
    if (left.count() <= 0) {
      result_.timed_out = true;
      return Error(ErrorCode::kIo, "timed out");
    }
    pollfd fds[2];
    nfds_t n = 0;
    if (out_ >= 0) fds[n++] = {out_, POLLIN, 0};
    if (writing) fds[n++] = {in_, POLLOUT, 0};
    const int ready = ::poll(fds, n, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) return ErrnoError(errno, "poll");
    if (ready <= 0) continue;
    const pollfd& in_fd = fds[n - 1];
    if (writing && (in_fd.revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      const ssize_t w =
          ::send(in_, data.data() + written,
                 std::min<std::size_t>(data.size() - written, sizeof(buf)), MSG_NOSIGNAL);
      if (w > 0) written += static_cast<std::size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) {  // it stopped reading: drop the rest
        ::close(in_);
        in_ = -1;
      }
    }
    if (out_ < 0 || (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    const ssize_t got = ::read(out_, buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      ::close(out_);
      out_ = -1;
      continue;
    }
    result_.output.append(buf, static_cast<std::size_t>(got));
    if (result_.output.size() > max_output_) {
      if (overflow_ == ProcessSpec::Overflow::kFail) {
        result_.output_overflowed = true;
        return Error(ErrorCode::kTooLarge, "wrote more output than allowed");
      }
      result_.output.erase(0, result_.output.size() - max_output_);
    }
  }
}

Status RunningProcess::Write(std::span<const std::uint8_t> data) { return Pump(data, false); }

Result<ProcessResult> RunningProcess::Finish() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
  Status read = Pump({}, true);
  if (!read.ok() && !result_.timed_out && !result_.output_overflowed) return read.error();
  if (out_ >= 0) ::close(out_);
  out_ = -1;
  if (result_.timed_out || result_.output_overflowed) ::kill(-pid_, SIGKILL);
  bool reap_timed_out = false;
  result_.exit_code = DecodeWaitStatus(Reap(pid_, clock_, deadline_, &reap_timed_out));
  reaped_ = true;
  result_.timed_out = result_.timed_out || reap_timed_out;
  return std::move(result_);
}

Result<ProcessResult> RunProcess(const ProcessSpec& spec, Clock* clock) {
  QP_ASSIGN_OR_RETURN(auto run, RunningProcess::StartWith(spec, clock, !spec.input.empty()));
  // A run that timed out or overflowed while fed is Finish's to report; a failure to read
  // or write comes back from it too.
  (void)run->Write(spec.input);
  return run->Finish();
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
