// Signed device reports, posted as fast as quietpatch-server instances store them:
//
//   report_bench --ports P[,P...] --devices N --events E --batch B --connections C
//                --admin-token-file F [--cpu LABEL=PID[,PID...]]...
//
// Each device has its own ed25519 key and enrolls with a token made through the admin API;
// every request is signed as quietpatchd signs it (contract/device_auth.h) on the device's
// own keep-alive connection to one of the instances (connections spread over the ports).
// A connection's thread sends batch k of each of its devices in turn, so no device sends
// faster than an agent does; a 429 or 503 is retried after its Retry-After. Prints one
// line: events sent, events the server said it stored (new ones only), seconds, events/s.
// Signing is in the measured time, as it is in a fleet's. Each --cpu adds the CPU time its
// processes used during the reports (utime + stime from /proc), per event stored, and the
// line ends with this process's own.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "server/test_device.h"
#include "server/test_http.h"

namespace {

using Json = nlohmann::json;
using qp::server::TestDevice;

// One keep-alive HTTP/1.1 connection to an instance.
class Connection {
 public:
  explicit Connection(int port) : port_(port) {}
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Status (0: the connection failed; reconnects next time), body, Retry-After.
  int Post(const std::string& target, const std::string& body,
           const std::vector<std::string>& headers, std::string* answer, long* retry_after) {
    if (fd_ < 0) {
      fd_ = qp::server::Connect(port_);
      if (fd_ < 0) return 0;
      int one = 1;
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    std::string request = "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& h : headers) request += h + "\r\n";
    request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\n\r\n" + body;
    if (!SendAll(request)) return Reset();
    std::string in;
    std::size_t end;
    char buf[16384];
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return Reset();
      in.append(buf, static_cast<std::size_t>(n));
    }
    std::string head = in.substr(0, end);
    int status = std::atoi(head.c_str() + head.find(' ') + 1);
    std::size_t length = HeaderNumber(head, "content-length:");
    *retry_after = static_cast<long>(HeaderNumber(head, "retry-after:"));
    *answer = in.substr(end + 4);
    while (answer->size() < length) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return Reset();
      answer->append(buf, static_cast<std::size_t>(n));
    }
    if (head.find("onnection: close") != std::string::npos) Reset();
    return status;
  }

 private:
  bool SendAll(const std::string& s) {
    std::size_t done = 0;
    while (done < s.size()) {
      ssize_t n = ::send(fd_, s.data() + done, s.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  }
  int Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return 0;
  }
  static std::size_t HeaderNumber(const std::string& head, const std::string& name) {
    std::string lower = head;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::size_t at = lower.find("\r\n" + name);
    if (at == std::string::npos) return 0;
    return std::strtoul(lower.c_str() + at + 2 + name.size(), nullptr, 10);
  }

  int port_;
  int fd_ = -1;
};

std::string EventsBody(const std::string& install_id, int from, int to, int last) {
  Json events = Json::array();
  for (int s = from; s <= to; ++s) {
    events.push_back(Json{{"seq", s},
                          {"time", 1800000000 + s},
                          {"component", "comp"},
                          {"platform", "linux-x86_64"},
                          {"base", "1.0"},
                          {"improvement", "a"},
                          {"state", s < last ? "downloading" : "protected"},
                          {"error", ""},
                          {"restart_needed", Json::array()}});
  }
  return Json{{"install_id", install_id}, {"agent_version", "bench"}, {"events", events}}.dump();
}

// Posts until the server answers 200 (429/503/connection errors retried). The JSON answer.
Json PostSigned(Connection* c, const TestDevice& d, const std::string& target,
                const std::string& body, std::atomic<long>* retries) {
  for (;;) {
    std::string answer;
    long retry_after = 0;
    int status = c->Post(target, body, d.Sign("POST", target, body), &answer, &retry_after);
    if (status == 200) return Json::parse(answer, nullptr, false);
    if (status != 0 && status != 429 && status != 503) {
      std::fprintf(stderr, "report_bench: %s answered %d: %s\n", target.c_str(), status,
                   answer.c_str());
      std::exit(1);
    }
    ++*retries;
    std::this_thread::sleep_for(std::chrono::milliseconds(status == 0 ? 50 : 1000 * retry_after));
  }
}

// CPU seconds (user + system) a process has used so far; 0 when it is gone.
double CpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i >= 14) ticks += std::stod(f);  // fields 14, 15: utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SelfCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// LABEL=PID,PID...: a group of processes whose CPU the run reports.
struct CpuGroup {
  std::string label;
  std::vector<int> pids;
  double before = 0;
  double Now() const {
    double s = 0;
    for (int pid : pids) s += CpuSeconds(pid);
    return s;
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Posts signed device reports to quietpatch-server instances; prints events/s."};
  std::vector<int> ports;
  int devices = 1000, events = 50, batch = 10, connections = 64;
  std::string token_file;
  std::vector<std::string> cpu_specs;
  app.add_option("--ports", ports, "the instances' ports on 127.0.0.1")->required()->delimiter(',');
  app.add_option("--devices", devices)->check(CLI::Range(1, 1000000));
  app.add_option("--events", events, "events per device")->check(CLI::Range(1, 100000));
  app.add_option("--batch", batch, "events per request")->check(CLI::Range(1, 100));
  app.add_option("--connections", connections)->check(CLI::Range(1, 4096));
  app.add_option("--admin-token-file", token_file)->required();
  app.add_option("--cpu", cpu_specs, "LABEL=PID[,PID...]: report these processes' CPU per event");
  CLI11_PARSE(app, argc, argv);

  std::string admin;
  std::ifstream(token_file) >> admin;
  auto made = qp::server::Http(
      ports[0], "POST", "/v1/admin/enrollments", Json{{"uses", devices}, {"days", 1}}.dump(),
      {"Authorization: Bearer " + admin, "Content-Type: application/json"});
  Json token = Json::parse(made.body, nullptr, false);
  if (made.status != 200 || !token.contains("token")) {
    std::fprintf(stderr, "report_bench: enrollment token: %d %s\n", made.status, made.body.c_str());
    return 1;
  }
  std::vector<TestDevice> fleet(static_cast<std::size_t>(devices));
  connections = std::min(connections, devices);

  std::atomic<long> retries{0}, stored{0};
  auto run = [&](auto per_connection) {
    std::vector<std::thread> threads;
    for (int t = 0; t < connections; ++t) {
      threads.emplace_back([&, t] {
        Connection c(ports[static_cast<std::size_t>(t) % ports.size()]);
        per_connection(t, &c);
      });
    }
    for (auto& th : threads) th.join();
  };
  // Enrollment, not measured.
  run([&](int t, Connection* c) {
    for (int i = t; i < devices; i += connections) {
      const TestDevice& d = fleet[static_cast<std::size_t>(i)];
      PostSigned(c, d, "/v1/enroll", d.EnrollBody(token["token"]), &retries);
    }
  });
  retries = 0;
  std::vector<CpuGroup> groups;
  for (const std::string& spec : cpu_specs) {
    CpuGroup g;
    auto eq = spec.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "report_bench: --cpu %s: want LABEL=PID[,PID...]\n", spec.c_str());
      return 2;
    }
    g.label = spec.substr(0, eq);
    std::istringstream list(spec.substr(eq + 1));
    for (std::string pid; std::getline(list, pid, ',');) {
      if (!pid.empty()) g.pids.push_back(std::stoi(pid));
    }
    g.before = g.Now();
    groups.push_back(std::move(g));
  }
  double self_before = SelfCpuSeconds();
  auto start = std::chrono::steady_clock::now();
  run([&](int t, Connection* c) {
    for (int from = 1; from <= events; from += batch) {
      int to = std::min(events, from + batch - 1);
      for (int i = t; i < devices; i += connections) {
        const TestDevice& d = fleet[static_cast<std::size_t>(i)];
        Json a = PostSigned(c, d, "/v1/reports", EventsBody(d.id(), from, to, events), &retries);
        stored += a.value("stored", 0L);
      }
    }
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  long sent = static_cast<long>(devices) * events;
  std::string cpu;
  double per = 1e6 / static_cast<double>(std::max(1L, stored.load()));
  auto add = [&](const std::string& label, double seconds_used) {
    char micros[32];
    std::snprintf(micros, sizeof micros, " %.0f", seconds_used * per);
    cpu += (cpu.empty() ? "; CPU per event stored: " : ", ") + label + micros;
  };
  for (const CpuGroup& g : groups) add(g.label, g.Now() - g.before);
  add("this client", SelfCpuSeconds() - self_before);
  cpu += " us";
  std::printf(
      "%ld events from %d devices (%d a request, %d connections, %zu instance%s) in %.2f s = %.0f "
      "events/s stored; sent %ld, stored %ld, %s; %ld retries%s\n",
      sent, devices, batch, connections, ports.size(), ports.size() == 1 ? "" : "s", seconds,
      static_cast<double>(stored) / seconds, sent, stored.load(),
      stored == sent ? "no loss" : "LOSS", retries.load(), cpu.c_str());
  return stored == sent ? 0 : 1;
}
