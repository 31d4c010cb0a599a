#include "core/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

namespace qp {
namespace {

thread_local std::vector<std::pair<std::string, std::string>> tls_fields;

// syslog(3) priority of a level, as journald and sd-daemon(3) prefixes number them.
int Priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::err:
      return 3;
    case spdlog::level::critical:
      return 2;
    default:
      return 6;
  }
}

// "%*" in a pattern: the sd-daemon(3) priority prefix journald reads ("<3>" for errors).
class JournalPriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string s = "<" + std::to_string(Priority(msg.level)) + ">";
    dest.append(s.data(), s.data() + s.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JournalPriorityFlag>();
  }
};

// One field of journald's native protocol, in the length-prefixed form that any value may
// take (newlines included): NAME\n, the value's length as 64-bit little endian, the value, \n.
void AppendField(std::string* out, std::string_view name, std::string_view value) {
  out->append(name);
  out->push_back('\n');
  std::uint64_t n = value.size();
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out->append(value);
  out->push_back('\n');
}

// Entries as datagrams to journald's socket, with the thread's LogFields. A message longer
// than 16 KiB is cut (journald wants a memfd beyond a datagram); when the socket refuses a
// datagram, the line goes to stderr with its priority prefix instead.
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  JournalSink(int fd, std::string identifier) : fd_(fd), identifier_(std::move(identifier)) {}
  ~JournalSink() override { ::close(fd_); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    constexpr std::size_t kMaxMessage = 16 * 1024;
    std::string_view text(msg.payload.data(), std::min(msg.payload.size(), kMaxMessage));
    std::string datagram;
    datagram.reserve(text.size() + 256);
    AppendField(&datagram, "MESSAGE", text);
    AppendField(&datagram, "PRIORITY", std::to_string(Priority(msg.level)));
    AppendField(&datagram, "SYSLOG_IDENTIFIER", identifier_);
    for (const auto& [name, value] : tls_fields) AppendField(&datagram, name, value);
    if (::send(fd_, datagram.data(), datagram.size(), MSG_NOSIGNAL) < 0) {
      std::fprintf(stderr, "<%d>%.*s\n", Priority(msg.level), static_cast<int>(text.size()),
                   text.data());
    }
  }
  void flush_() override {}

 private:
  int fd_;
  std::string identifier_;
};

// A datagram socket connected to journald's, or -1.
int ConnectJournal(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) return -1;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool ValidFieldName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '_') return false;
  for (char ch : name) {
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_')) return false;
  }
  return true;
}

std::string ProgramName() {
  const char* name = program_invocation_short_name;
  return name != nullptr && name[0] != '\0' ? name : "quietpatch";
}

}  // namespace

bool StderrIsJournal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  struct stat st {};
  if (::fstat(2, &st) != 0) return false;
  std::string expected = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  return expected == js;
}

Status InitLogging(std::string_view level, LogTarget target, const std::string& journal_socket) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return Error(ErrorCode::kInvalidArgument, "unknown log level '" + std::string(level) + "'");
  }
  bool journal = target == LogTarget::kJournal || (target == LogTarget::kAuto && StderrIsJournal());
  std::shared_ptr<spdlog::logger> logger;
  int fd = journal ? ConnectJournal(journal_socket) : -1;
  if (fd >= 0) {
    logger = std::make_shared<spdlog::logger>("quietpatch",
                                              std::make_shared<JournalSink>(fd, ProgramName()));
  } else {
    logger = std::make_shared<spdlog::logger>("quietpatch",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    if (journal) {
      formatter->add_flag<JournalPriorityFlag>('*').set_pattern("%*%v");
    } else {
      formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
    }
    logger->set_formatter(std::move(formatter));
  }
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
  return OkStatus();
}

LogFields::LogFields(std::vector<std::pair<std::string, std::string>> fields) : added_(0) {
  for (auto& field : fields) {
    if (!ValidFieldName(field.first)) continue;
    tls_fields.push_back(std::move(field));
    ++added_;
  }
}

LogFields::LogFields(std::string name, std::string value)
    : LogFields(
          std::vector<std::pair<std::string, std::string>>{{std::move(name), std::move(value)}}) {}

LogFields::~LogFields() { tls_fields.resize(tls_fields.size() - added_); }

}  // namespace qp
