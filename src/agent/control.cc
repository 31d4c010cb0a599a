#include "agent/control.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace qp::agent {

using Json = nlohmann::json;

namespace {

constexpr std::size_t kMaxRequest = 64 * 1024;

// Reads one line within `timeout_ms` in all (not per read: a client dripping a byte at a
// time is cut at the deadline).
bool ReadAll(int fd, std::string* out, std::size_t limit, int timeout_ms) {
  char buf[4096];
  const auto deadline = Clock::Real()->Monotonic() + std::chrono::milliseconds(timeout_ms);
  while (out->size() <= limit) {
    if (!out->empty() && out->back() == '\n') return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                      Clock::Real()->Monotonic());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    ssize_t got = ::read(fd, buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return !out->empty();
    out->append(buf, static_cast<std::size_t>(got));
  }
  return false;
}

void WriteAll(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

Json Fail(const std::string& code, const std::string& message) {
  return Json{{"ok", false}, {"code", code}, {"error", message}};
}

Json FromStatus(const Status& s, Json result) {
  if (!s.ok()) return Fail("failed", s.error().ToString());
  return Json{{"ok", true}, {"result", std::move(result)}};
}

}  // namespace

bool IsAdmin(unsigned uid, unsigned gid, const std::string& admin_group) {
  if (uid == 0) return true;
  if (admin_group.empty()) return false;
  group* g = ::getgrnam(admin_group.c_str());
  if (g == nullptr) return false;
  if (g->gr_gid == gid) return true;
  passwd* pw = ::getpwuid(uid);
  if (pw == nullptr) return false;
  int count = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(count));
  if (::getgrouplist(pw->pw_name, gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<std::size_t>(count));
    if (::getgrouplist(pw->pw_name, gid, groups.data(), &count) < 0) return false;
  }
  for (int i = 0; i < count; ++i) {
    if (groups[static_cast<std::size_t>(i)] == g->gr_gid) return true;
  }
  return false;
}

ControlServer::ControlServer(Agent* agent, std::string socket_path)
    : ControlServer(agent, std::move(socket_path), Options()) {}

ControlServer::ControlServer(Agent* agent, std::string socket_path, Options options)
    : agent_(agent), path_(std::move(socket_path)), options_(options) {}

ControlServer::~ControlServer() { Stop(); }

Status ControlServer::Start() {
  sockaddr_un addr{};
  if (path_.size() >= sizeof(addr.sun_path)) {
    return Error(ErrorCode::kInvalidArgument, "control socket path too long: " + path_);
  }
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return ErrnoError(errno, "socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  ::unlink(path_.c_str());  // a stale socket of an earlier run
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoError(errno, "bind " + path_);
  }
  ::chmod(path_.c_str(), 0666);
  if (::listen(listen_fd_, 64) != 0) return ErrnoError(errno, "listen " + path_);
  // Stop() wakes the thread through this: an idle daemon's control thread sleeps in poll
  // without a timeout instead of waking to look at a flag.
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return ErrnoError(errno, "eventfd");
  thread_ = std::thread([this] { Serve(); });
  return OkStatus();
}

void ControlServer::Stop() {
  stop_ = true;
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) {
    ::close(wake_fd_);
    wake_fd_ = -1;
  }
  {
    // Connections in progress end within their deadline (or their command).
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return active_ == 0; });
  }
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
    listen_fd_ = -1;
  }
}

void ControlServer::Serve() {
  while (!stop_) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(p, 2, -1) <= 0 || stop_ || (p[0].revents & POLLIN) == 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      ::close(fd);
      continue;
    }
    // An answer the client does not take within the deadline is abandoned.
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(options_.deadline.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((options_.deadline.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    bool busy;
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy = active_ >= kMaxConnections || per_user_[cred.uid] >= kMaxPerUser;
      if (!busy) {
        ++active_;
        ++per_user_[cred.uid];
      } else if (per_user_[cred.uid] == 0) {
        per_user_.erase(cred.uid);
      }
    }
    if (busy) {
      WriteAll(fd, Fail("busy", "too many control connections; try again").dump() + "\n");
      ::close(fd);
      continue;
    }
    std::thread([this, fd, cred] {
      Handle(fd, cred.uid, cred.gid);
      // The slot is released before the close: a client reads to end of file, so its next
      // command (the same user, one slot left) must find the slot free, not race us for it.
      std::lock_guard<std::mutex> lock(mu_);
      --active_;
      if (--per_user_[cred.uid] <= 0) per_user_.erase(cred.uid);
      ::close(fd);
      idle_.notify_all();
    }).detach();
  }
}

void ControlServer::Handle(int fd, unsigned uid, unsigned gid) {
  std::string request;
  Json answer;
  bool flush = false;
  if (!ReadAll(fd, &request, kMaxRequest, static_cast<int>(options_.deadline.count()))) {
    answer = Fail("bad_request", "request too large, incomplete or too slow");
  } else {
    Json j = Json::parse(request, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("cmd") || !j["cmd"].is_string()) {
      answer = Fail("bad_request", "expected a JSON object with \"cmd\"");
    } else {
      std::string cmd = j["cmd"].get<std::string>();
      bool admin = IsAdmin(uid, gid, agent_->config().admin_group);
      bool changes = cmd == "settings" || cmd == "check" || cmd == "install" || cmd == "remove" ||
                     cmd == "install_bundle";
      if (changes && !admin) {
        answer = Fail("permission_denied",
                      "only root" +
                          (agent_->config().admin_group.empty()
                               ? std::string()
                               : " or members of group " + agent_->config().admin_group) +
                          " may " + cmd);
        spdlog::warn("control: uid {} denied {}", uid, cmd);
      } else if (cmd == "status") {
        answer = Json{{"ok", true}, {"result", agent_->StatusJson()}};
      } else if (cmd == "history") {
        answer = Json{{"ok", true}, {"result", agent_->HistoryJson()}};
      } else if (cmd == "settings") {
        if (!j.contains("auto_install") || !j["auto_install"].is_boolean()) {
          answer = Fail("bad_request", "settings needs \"auto_install\": true|false");
        } else {
          answer = FromStatus(agent_->SetAutoInstall(j["auto_install"].get<bool>()),
                              agent_->StatusJson());
        }
      } else if (cmd == "check") {
        answer = FromStatus(agent_->Check(), agent_->StatusJson());
      } else if (cmd == "install") {
        std::string what = j.value("what", std::string());
        answer = what.empty() ? Fail("bad_request", "install needs \"what\"")
                              : FromStatus(agent_->InstallNow(what), agent_->StatusJson());
      } else if (cmd == "install_bundle") {
        std::string path = j.value("path", std::string());
        answer = path.empty() || path[0] != '/'
                     ? Fail("bad_request", "install_bundle needs an absolute \"path\"")
                     : FromStatus(agent_->InstallBundle(path), agent_->StatusJson());
      } else if (cmd == "remove") {
        std::string component = j.value("component", std::string());
        answer = component.empty() ? Fail("bad_request", "remove needs \"component\"")
                                   : FromStatus(agent_->RemoveNow(component), agent_->StatusJson());
      } else {
        answer = Fail("bad_request", "unknown command " + cmd);
      }
      if (changes && admin) {
        spdlog::info("control: uid {}: {}", uid, cmd);
        flush = true;
      }
    }
  }
  WriteAll(fd, answer.dump() + "\n");
  if (flush) {
    // What the person changed reaches the server now, not at the next check.
    long retry_after = 0;
    Status flushed = agent_->FlushReports(&retry_after);
    if (!flushed.ok())
      spdlog::warn("control: reports not delivered yet: {}", flushed.error().ToString());
  }
}

Result<Json> CallControl(const std::string& socket_path, const Json& request, int timeout_ms) {
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return Error(ErrorCode::kInvalidArgument, "socket path too long");
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, "socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED) {
      return Error(ErrorCode::kNotFound,
                   "quietpatchd is not running (no daemon on " + socket_path + ")");
    }
    return ErrnoError(err, "connect " + socket_path);
  }
  WriteAll(fd, request.dump() + "\n");
  std::string answer;
  bool ok = ReadAll(fd, &answer, 64 << 20, timeout_ms);
  ::close(fd);
  if (!ok) return Error(ErrorCode::kIo, "no answer from quietpatchd");
  Json j = Json::parse(answer, nullptr, false);
  if (j.is_discarded()) return Error(ErrorCode::kCorrupt, "unreadable answer from quietpatchd");
  return j;
}

}  // namespace qp::agent
