#include "server/http_server.h"

#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "contract/device_auth.h"
#include "core/durable_file.h"
#include "server/fleet_service.h"
#include "server/report_parser.h"
#include "server/watch_hub.h"

namespace qp::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// Connections at most, whatever the descriptor limit allows; and descriptors kept for
// files, the database and logs.
constexpr std::size_t kMaxConnections = 20000;
constexpr std::size_t kReservedDescriptors = 64;
// After accept() fails (out of descriptors, say), wait this long before accepting again.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
constexpr auto kWriteTimeout = std::chrono::seconds(30);

std::string Query(std::string_view target, const std::string& key) {
  std::size_t q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    std::size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key && eq != std::string_view::npos)
      return std::string(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return "";
}

bool ParseU64(const std::string& s, std::uint64_t* out) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
    return false;
  *out = std::stoull(s);
  return true;
}

// The dashboard's static files are read once, at start.
constexpr std::uint64_t kMaxDashboardFileBytes = 8 << 20;

Result<std::string> ReadDashboardFile(const std::string& path) {
  auto bytes = ReadFileLimited(Env::Default(), path, kMaxDashboardFileBytes);
  if (!bytes.ok())
    return bytes.error().WithContext("dashboard file (scripts/setup.sh installs it)");
  return std::string(bytes->begin(), bytes->end());
}

}  // namespace

struct HttpServer::Impl {
  const ServerConfig& config;
  FleetService* service;
  RepositoryFiles* files;
  // One event loop per I/O thread, each run by that thread alone, so a connection's
  // handlers never run concurrently and need no strand. The first also runs the acceptor
  // and the timers. Connections are spread over the loops in turn. The other loops are
  // declared first so that they are destroyed last: a pending accept on the first loop
  // holds a socket of another loop, and destroying it needs that loop's services.
  std::vector<std::unique_ptr<asio::io_context>> more_loops;
  asio::io_context ioc{1};
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  std::size_t next_loop = 0;              // touched by the acceptor's handler only
  std::optional<asio::ssl::context> tls;  // set when a certificate and key are configured
  asio::thread_pool workers;              // config.worker_threads
  tcp::acceptor acceptor{ioc};
  asio::steady_timer poll_timer{ioc};
  asio::steady_timer resign_timer{ioc};
  std::vector<std::thread> threads;
  WatchHub hub;
  PeerSlots watch_slots;
  asio::steady_timer accept_timer{ioc};
  std::size_t max_connections = kMaxConnections;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::uint64_t> published_version{0};
  std::atomic<bool> stopping{false};
  std::string chart_js, index_html, app_js;

  Impl(const ServerConfig& c, FleetService* s, RepositoryFiles* f)
      : config(c),
        service(s),
        files(f),
        workers(static_cast<std::size_t>(std::max(1, c.worker_threads))) {}

  asio::io_context& NextLoop() {
    std::size_t i = next_loop++ % (more_loops.size() + 1);
    return i == 0 ? ioc : *more_loops[i - 1];
  }
  void Accept();
  void Poll();
  void Resign();
};

namespace {

// One connection, plain (Stream = beast::tcp_stream) or TLS (beast::ssl_stream<...>).
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  Session(tcp::socket socket, HttpServer::Impl* server) requires(!kTls)
      : stream_(std::move(socket)), server_(server), timer_(stream_.get_executor()) {}
  Session(tcp::socket socket, asio::ssl::context& tls, HttpServer::Impl* server) requires(kTls)
      : stream_(std::move(socket), tls), server_(server), timer_(stream_.get_executor()) {}
  ~Session() { server_->connections--; }

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        beast::get_lowest_layer(self->stream_)
            .expires_after(std::chrono::seconds(self->server_->config.request_timeout_seconds));
        self->stream_.async_handshake(asio::ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) return self->Close();
          self->Read();
        });
      } else {
        self->Read();
      }
    });
  }

 private:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void Read() {
    parser_.emplace();
    parser_->header_limit(8192);
    parser_->body_limit(kMaxReportBytes);
    // The whole next request (or the idle wait before it) must arrive within the limit.
    Lowest().expires_after(std::chrono::seconds(server_->config.request_timeout_seconds));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
      Close();
      return;
    }
    started_ = std::chrono::steady_clock::now();
    if (ec == http::error::body_limit) return SendError(413, "body too large", "other", false);
    if (ec == http::error::header_limit) return SendError(431, "headers too large", "other", false);
    if (ec) return SendError(400, "malformed request", "other", false);
    req_ = parser_->release();
    Handle();
  }

  void Handle() {
    std::string_view target(req_.target().data(), req_.target().size());
    std::string_view path = target.substr(0, target.find('?'));
    auto method = req_.method();
    bool get = method == http::verb::get || method == http::verb::head;
    if (path.rfind("/repo/", 0) == 0) {
      if (!get) return SendError(405, "method not allowed", "repo", true);
      return ServeFile(path.substr(6));
    }
    if (path == "/v1/watch") {
      if (!get) return SendError(405, "method not allowed", "watch", true);
      return Watch(target);
    }
    if (path == "/v1/reports") {
      if (method != http::verb::post) return SendError(405, "method not allowed", "reports", true);
      // Not waited for on a worker: the worker is free once the report is queued for the
      // database, and the answer comes from the writer when it is committed.
      return WorkAsync("reports", [this](std::function<void(ApiResponse)> reply) {
        server_->service->PostReports(Signed(), std::move(reply));
      });
    }
    if (path == "/v1/enroll") {
      if (method != http::verb::post) return SendError(405, "method not allowed", "enroll", true);
      std::string peer = Peer();
      return Work("enroll", [this, peer]() { return server_->service->Enroll(Signed(), peer); });
    }
    if (path.rfind("/v1/admin/enrollments", 0) == 0 || path.rfind("/v1/admin/devices", 0) == 0) {
      std::string auth(req_[http::field::authorization]);
      std::string peer = Peer();
      std::string p(path);
      bool post = method == http::verb::post;
      if (!post && !get) return SendError(405, "method not allowed", "admin", true);
      return Work("admin", [this, auth, peer, p, post]() {
        return server_->service->AdminDevices(p, post, auth, req_.body(), peer);
      });
    }
    if (path == "/v1/admin/rollout") {
      if (method != http::verb::post) return SendError(405, "method not allowed", "admin", true);
      std::string auth(req_[http::field::authorization]);
      std::string peer = Peer();
      return Work("admin", [this, auth, peer]() {
        return server_->service->AdminRollout(auth, req_.body(), peer);
      });
    }
    if (path == "/v1/admin/audit" && get) {
      std::string auth(req_[http::field::authorization]);
      return Work("admin", [this, auth]() { return server_->service->AdminAudit(auth); });
    }
    if (path == "/v1/fleet/improvements" && get) {
      std::string auth(req_[http::field::authorization]);
      return Work("fleet", [this, auth]() { return server_->service->FleetImprovements(auth); });
    }
    if (path == "/healthz" && get) {  // for a load balancer's checks
      return Send(200, "ok\n", "text/plain", "healthz", "no-store");
    }
    if (path == "/metrics" && get) {
      return Send(200, server_->service->Metrics(server_->hub.size()), "text/plain; version=0.0.4",
                  "metrics", "no-store");
    }
    if (get && (path == "/" || path == "/index.html")) {
      return Send(200, server_->index_html, "text/html; charset=utf-8", "dashboard", "no-cache");
    }
    if (get && path == "/app.js") {
      return Send(200, server_->app_js, "text/javascript", "dashboard", "no-cache");
    }
    if (get && path == "/assets/chart.umd.js" && !server_->chart_js.empty()) {
      return Send(200, server_->chart_js, "text/javascript", "dashboard", "public, max-age=86400");
    }
    SendError(404, "not found", "other", true);
  }

  // The request as a device signed it (contract/device_auth.h).
  SignedRequest Signed() {
    auto header = [&](const char* name) {
      auto v = req_[name];
      return std::string(v.data(), v.size());
    };
    SignedRequest r;
    r.method = std::string_view(req_.method_string().data(), req_.method_string().size());
    r.target = std::string_view(req_.target().data(), req_.target().size());
    r.body = req_.body();
    r.signature = {header(contract::kDeviceHeader), header(contract::kTimeHeader),
                   header(contract::kNonceHeader), header(contract::kSignatureHeader)};
    return r;
  }

  std::string Peer() {
    beast::error_code ec;
    auto ep = Lowest().socket().remote_endpoint(ec);
    return ec ? "?" : ep.address().to_string();
  }

  void ServeFile(std::string_view rel) {
    auto range = req_[http::field::range];
    auto etag = req_[http::field::if_none_match];
    FileResponse f = server_->files->Serve(rel, std::string_view(range.data(), range.size()),
                                           std::string_view(etag.data(), etag.size()));
    if (f.status == 404 || f.status == 400) return SendError(f.status, "not found", "repo", true);
    bool has_body = (f.status == 200 || f.status == 206) && req_.method() != http::verb::head;
    if (has_body && f.file) return StreamFile(f);
    if (f.status == 200 && has_body && f.prepared_200 && req_.version() == 11 &&
        req_.keep_alive() && !server_->stopping) {
      return WritePrepared(f.prepared_200);
    }
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(f.status), req_.version());
    SetFileHeaders(*res, f);
    if (has_body && f.body) {
      res->body().assign(f.body->data() + f.offset, f.length);
      res->prepare_payload();
    } else {
      res->content_length(f.status == 200 || f.status == 206 ? f.length : 0);
    }
    Write(res, "repo");
  }

  // The request in the metrics, with the time since it was read.
  void Count(const char* route, int status) {
    server_->service->CountRequest(
        route, status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  }

  // The whole response as the repository prepared it: one write, nothing built per request.
  // A small response is bounded by the deadline the request was read under (no timer of
  // its own).
  void WritePrepared(std::shared_ptr<const std::string> response) {
    Count("repo", 200);
    asio::async_write(stream_, asio::buffer(*response),
                      [self = shared_from_this(), response](beast::error_code ec, std::size_t) {
                        if (ec) return self->Close();
                        self->Read();
                      });
  }

  template <class Message>
  void SetFileHeaders(Message& res, const FileResponse& f) {
    res.set(http::field::server, "quietpatch-server");
    res.set(http::field::accept_ranges, "bytes");
    if (!f.etag.empty()) res.set(http::field::etag, f.etag);
    if (!f.cache_control.empty()) res.set(http::field::cache_control, f.cache_control);
    if (!f.content_range.empty()) res.set(http::field::content_range, f.content_range);
    if (!f.content_type.empty()) res.set(http::field::content_type, f.content_type);
  }

  // A large file goes out in kStreamPiece pieces read from disk as the client takes them:
  // a connection holds one piece at most, however large the file and however slow the
  // reader (each piece must be taken within the write timeout).
  struct Streaming {
    http::response<http::buffer_body> res;
    std::optional<http::response_serializer<http::buffer_body>> serializer;
    std::shared_ptr<const OpenFile> file;
    std::uint64_t offset = 0, remaining = 0;
    bool keep = false;
    std::vector<char> piece;
  };
  static constexpr std::size_t kStreamPiece = 64 << 10;

  void StreamFile(const FileResponse& f) {
    auto s = std::make_shared<Streaming>();
    s->res = http::response<http::buffer_body>(static_cast<http::status>(f.status), req_.version());
    SetFileHeaders(s->res, f);
    s->res.content_length(f.length);
    s->keep = req_.keep_alive() && !server_->stopping;
    s->res.keep_alive(s->keep);
    s->res.body().data = nullptr;
    s->res.body().more = true;
    s->file = f.file;
    s->offset = f.offset;
    s->remaining = f.length;
    s->piece.resize(static_cast<std::size_t>(std::min<std::uint64_t>(kStreamPiece, f.length)));
    s->serializer.emplace(s->res);
    Count("repo", f.status);
    Lowest().expires_after(kWriteTimeout);
    http::async_write_header(stream_, *s->serializer,
                             [self = shared_from_this(), s](beast::error_code ec, std::size_t) {
                               if (ec) return self->Close();
                               self->StreamPiece(s);
                             });
  }

  void StreamPiece(const std::shared_ptr<Streaming>& s) {
    if (s->remaining == 0) {
      s->res.body().data = nullptr;
      s->res.body().more = false;
    } else {
      std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(s->piece.size(), s->remaining));
      std::size_t got = s->file->ReadAt(s->offset, s->piece.data(), want);
      if (got == 0) {
        // The file shrank under us: the client sees a short body and retries.
        spdlog::warn("repository file ended early while streaming; connection closed");
        return Close();
      }
      s->offset += got;
      s->remaining -= got;
      s->res.body().data = s->piece.data();
      s->res.body().size = got;
      s->res.body().more = true;
    }
    Lowest().expires_after(kWriteTimeout);
    http::async_write(stream_, *s->serializer,
                      [self = shared_from_this(), s](beast::error_code ec, std::size_t) {
                        if (ec == http::error::need_buffer) ec = {};
                        if (ec) return self->Close();
                        if (!s->serializer->is_done()) return self->StreamPiece(s);
                        if (!s->keep) return self->Close();
                        self->Read();
                      });
  }

  void Watch(std::string_view target) {
    std::uint64_t known = 0, timeout = 30;
    if (!ParseU64(Query(target, "timestamp"), &known)) {
      return SendError(400, "watch needs ?timestamp=N", "watch", true);
    }
    std::string t = Query(target, "timeout");
    if (!t.empty() && (!ParseU64(t, &timeout) || timeout > 3600)) {
      return SendError(400, "timeout must be 0..3600 seconds", "watch", true);
    }
    std::uint64_t now = server_->files->TimestampVersion();
    if (now > known) return SendWatch(now);
    if (req_[contract::kDeviceHeader].empty()) {
      // Anonymous: a share per client address.
      return BeginWatch(known, timeout, "address " + Peer(), server_->config.watch_per_address);
    }
    // Signed by an enrolled device: a share per device, whatever address it comes from (a
    // fleet behind one NAT address is not held to one address's share). A bad signature is
    // refused, not downgraded to anonymous.
    auto self = shared_from_this();
    asio::post(server_->workers, [self, known, timeout] {
      auto id = std::make_shared<std::string>();
      ApiResponse r = self->server_->service->AuthenticateWatch(self->Signed(), id.get());
      asio::post(self->stream_.get_executor(), [self, r, id, known, timeout] {
        if (r.status != 200) {
          return self->Write(self->MakeResponse(r.status, r.body, "application/json", "no-store"),
                             "watch");
        }
        self->BeginWatch(known, timeout, "device " + *id, self->server_->config.watch_per_device);
      });
    });
  }

  // Waits (in one of `owner`'s slots) for a timestamp newer than `known`, `timeout` seconds
  // at most.
  void BeginWatch(std::uint64_t known, std::uint64_t timeout, const std::string& owner, int share) {
    std::uint64_t now = server_->files->TimestampVersion();  // published meanwhile?
    if (now > known) return SendWatch(now);
    watch_slot_ = server_->watch_slots.Take(owner, share);
    if (!watch_slot_) {
      auto res = MakeResponse(429,
                              nlohmann::json{{"error", "too many watches from this " +
                                                           owner.substr(0, owner.find(' '))}}
                                  .dump(),
                              "application/json", "no-store");
      res->set(http::field::retry_after, std::to_string(timeout > 0 ? timeout : 30));
      return Write(res, "watch");
    }
    Lowest().expires_never();  // an idle watcher is expected to be idle
    auto self = shared_from_this();
    waiter_ = server_->hub.Add(known, [self](std::uint64_t v) {
      asio::post(self->stream_.get_executor(), [self, v] {
        self->timer_.cancel();
        if (v == 0) {
          self->waiter_.reset();
          self->EndWatch();
          self->Send(204, "", "", "watch", "no-store");  // shutting down: nothing new
        } else {
          self->SendWatch(v);
        }
      });
    });
    timer_.expires_after(std::chrono::seconds(timeout));
    timer_.async_wait([self](beast::error_code ec) {
      if (ec || !self->waiter_ || self->waiter_->done.exchange(true)) return;
      self->server_->hub.Remove(self->waiter_);
      self->waiter_.reset();
      self->EndWatch();
      self->Send(204, "", "", "watch", "no-store");
    });
    WatchForHangUp();
  }

  // A watching client sends nothing until it is answered: a read completing meanwhile means
  // it hung up (or broke the protocol). Either way its slot is freed at once.
  void WatchForHangUp() {
    const std::uint64_t generation = ++watch_generation_;
    stream_.async_read_some(asio::buffer(probe_), [self = shared_from_this(), generation](
                                                      beast::error_code, std::size_t) {
      if (generation != self->watch_generation_ || !self->waiter_) return;  // answered
      if (self->waiter_->done.exchange(true)) return;
      self->server_->hub.Remove(self->waiter_);
      self->waiter_.reset();
      self->timer_.cancel();
      self->watch_slot_.reset();
      self->Close();
    });
  }

  // Before a watch is answered: the hang-up read is cancelled (the next request is read
  // normally) and the slot released.
  void EndWatch() {
    ++watch_generation_;
    beast::error_code ignored;
    Lowest().socket().cancel(ignored);
    watch_slot_.reset();
  }

  void SendWatch(std::uint64_t version) {
    waiter_.reset();
    EndWatch();
    Send(200, nlohmann::json{{"timestamp", version}}.dump(), "application/json", "watch",
         "no-store");
  }

  // Runs `f` on a worker (it may wait on the database) and answers with what it returns.
  template <typename F>
  void Work(const char* route, F f) {
    auto self = shared_from_this();
    asio::post(server_->workers, [self, f, route]() { self->Reply(route)(f()); });
  }

  // Runs `f` on a worker with a function to answer through, from any thread, once.
  template <typename F>
  void WorkAsync(const char* route, F f) {
    auto self = shared_from_this();
    asio::post(server_->workers, [self, f, route]() { f(self->Reply(route)); });
  }

  std::function<void(ApiResponse)> Reply(const char* route) {
    return [self = shared_from_this(), route](ApiResponse r) {
      asio::post(self->stream_.get_executor(), [self, r = std::move(r), route] {
        auto res = self->MakeResponse(r.status, r.body, "application/json", "no-store");
        if (r.retry_after > 0) res->set(http::field::retry_after, std::to_string(r.retry_after));
        self->Write(res, route);
      });
    };
  }

  std::shared_ptr<http::response<http::string_body>> MakeResponse(int status,
                                                                  const std::string& body,
                                                                  const std::string& type,
                                                                  const std::string& cache) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(status), req_.version());
    res->set(http::field::server, "quietpatch-server");
    if (!type.empty()) res->set(http::field::content_type, type);
    if (!cache.empty()) res->set(http::field::cache_control, cache);
    res->body() = body;
    res->prepare_payload();
    return res;
  }

  void Send(int status, const std::string& body, const std::string& type, const char* route,
            const std::string& cache) {
    Write(MakeResponse(status, body, type, cache), route);
  }

  void SendError(int status, const std::string& message, const char* route, bool keep_alive) {
    if (!keep_alive) req_ = {};
    auto res = MakeResponse(status, nlohmann::json{{"error", message}}.dump(), "application/json",
                            "no-store");
    if (!keep_alive) res->keep_alive(false);
    Write(res, route);
  }

  void Write(std::shared_ptr<http::response<http::string_body>> res, const char* route) {
    bool keep = res->keep_alive() && req_.keep_alive() && !server_->stopping;
    res->keep_alive(keep);
    Count(route, res->result_int());
    Lowest().expires_after(kWriteTimeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep](beast::error_code ec, std::size_t) {
                        if (ec || !keep) return self->Close();
                        self->Read();
                      });
  }

  void Close() {
    if (waiter_) {
      waiter_->done = true;
      server_->hub.Remove(waiter_);
      waiter_.reset();
    }
    watch_slot_.reset();
    timer_.cancel();
    if constexpr (kTls) {
      Lowest().expires_after(std::chrono::seconds(2));
      stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        self->Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      });
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  Stream stream_;
  HttpServer::Impl* server_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  std::shared_ptr<WatchHub::Waiter> waiter_;
  std::shared_ptr<void> watch_slot_;
  std::uint64_t watch_generation_ = 0;
  std::array<char, 1> probe_{};
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(NextLoop(), [this](beast::error_code ec, tcp::socket socket) {
    if (stopping) return;
    if (ec) {
      // Out of descriptors, typically: accepting again at once would spin. Existing
      // connections go on meanwhile and free descriptors as they end.
      spdlog::warn("accept: {}; retrying in {} ms", ec.message(),
                   std::chrono::milliseconds(kAcceptBackoff).count());
      accept_timer.expires_after(kAcceptBackoff);
      accept_timer.async_wait([this](beast::error_code timer_ec) {
        if (!timer_ec && !stopping) Accept();
      });
      return;
    }
    if (connections >= max_connections) {
      beast::error_code ignored;
      socket.close(ignored);  // over the limit: refuse rather than fall over
    } else {
      connections++;
      if (tls) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket), *tls,
                                                                        this)
            ->Start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(std::move(socket), this)->Start();
      }
    }
    Accept();
  });
}

void HttpServer::Impl::Poll() {
  // The repository may change under us (the publisher writes files): notice new timestamps.
  std::uint64_t v = files->TimestampVersion();
  if (v > published_version) {
    published_version = v;
    hub.Notify(v);
  }
  poll_timer.expires_after(std::chrono::milliseconds(100));
  poll_timer.async_wait([this](beast::error_code ec) {
    if (!ec && !stopping) Poll();
  });
}

void HttpServer::Impl::Resign() {
  asio::post(workers, [this] { service->MaybeResignTimestamp(); });
  resign_timer.expires_after(std::chrono::seconds(60));
  resign_timer.async_wait([this](beast::error_code ec) {
    if (!ec && !stopping) Resign();
  });
}

HttpServer::HttpServer(const ServerConfig& config, FleetService* service, RepositoryFiles* files)
    : impl_(std::make_unique<Impl>(config, service, files)) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  Impl& s = *impl_;
  if (!s.config.dashboard_dir.empty()) {
    const std::string& d = s.config.dashboard_dir;
    QP_ASSIGN_OR_RETURN(s.index_html, ReadDashboardFile(d + "/index.html"));
    QP_ASSIGN_OR_RETURN(s.app_js, ReadDashboardFile(d + "/app.js"));
    QP_ASSIGN_OR_RETURN(s.chart_js,
                        ReadDashboardFile(d + "/node_modules/chart.js/dist/chart.umd.js"));
  }
  if (!s.config.tls_cert.empty() || !s.config.tls_key.empty()) {
    if (s.config.tls_cert.empty() || s.config.tls_key.empty()) {
      return Error(ErrorCode::kInvalidArgument, "TLS needs both a certificate and a key");
    }
    s.tls.emplace(asio::ssl::context::tls_server);
    s.tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1);
    boost::system::error_code tls_ec;
    s.tls->use_certificate_chain_file(s.config.tls_cert, tls_ec);
    if (!tls_ec) s.tls->use_private_key_file(s.config.tls_key, asio::ssl::context::pem, tls_ec);
    if (tls_ec) {
      return Error(ErrorCode::kInvalidArgument, "TLS certificate or key: " + tls_ec.message());
    }
  }
  beast::error_code ec;
  auto address = asio::ip::make_address(s.config.listen_address, ec);
  if (ec) return Error(ErrorCode::kInvalidArgument, "listen address " + s.config.listen_address);
  tcp::endpoint endpoint(address, static_cast<unsigned short>(s.config.listen_port));
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error(ErrorCode::kIo, "listen on " + s.config.listen_address + ":" +
                                     std::to_string(s.config.listen_port) + ": " + ec.message());
  }
  // As many descriptors as the hard limit allows; the connection cap follows from them.
  rlimit files_limit{};
  if (::getrlimit(RLIMIT_NOFILE, &files_limit) == 0 &&
      files_limit.rlim_cur < files_limit.rlim_max) {
    files_limit.rlim_cur = files_limit.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files_limit);
    (void)::getrlimit(RLIMIT_NOFILE, &files_limit);
  }
  if (files_limit.rlim_cur != RLIM_INFINITY) {
    std::size_t usable = files_limit.rlim_cur > kReservedDescriptors
                             ? static_cast<std::size_t>(files_limit.rlim_cur) - kReservedDescriptors
                             : 1;
    s.max_connections = std::min(kMaxConnections, usable);
  }
  spdlog::info("capacity: {} descriptors, {} connections at most, {} watches per address",
               static_cast<unsigned long long>(files_limit.rlim_cur), s.max_connections,
               s.config.watch_per_address);
  s.published_version = s.files->TimestampVersion();
  s.service->on_publish = [this] { NotifyPublished(); };
  s.service->defer = [&s](std::function<void()> f) { asio::post(s.workers, std::move(f)); };
  const int threads = std::max(1, s.config.threads);
  for (int i = 1; i < threads; ++i) s.more_loops.push_back(std::make_unique<asio::io_context>(1));
  s.Accept();
  // A shared repository tells of new timestamps itself (LISTEN/NOTIFY); a directory of
  // one's own is watched.
  if (!s.config.shared_repository) s.Poll();
  s.Resign();
  s.keep_running.push_back(asio::make_work_guard(s.ioc));
  for (auto& loop : s.more_loops) s.keep_running.push_back(asio::make_work_guard(*loop));
  s.threads.emplace_back([&s] { s.ioc.run(); });
  for (auto& loop : s.more_loops) {
    s.threads.emplace_back([l = loop.get()] { l->run(); });
  }
  return OkStatus();
}

void HttpServer::Stop() {
  Impl& s = *impl_;
  if (s.threads.empty()) return;
  s.stopping = true;
  asio::post(s.ioc, [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
    s.poll_timer.cancel();
    s.resign_timer.cancel();
  });
  // Watchers get their answer (nothing new) so they can come back to another instance.
  s.hub.CloseAll();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (s.connections > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Reports still queued for the database are written and answered (their answers go to
  // the event loops, their auto-halt checks to the workers) before either stops.
  s.service->FlushReports();
  s.workers.join();
  s.ioc.stop();
  for (auto& loop : s.more_loops) loop->stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  s.keep_running.clear();
}

int HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

std::size_t HttpServer::watchers() const { return impl_->hub.size(); }

bool HttpServer::Responsive(std::chrono::milliseconds within) {
  Impl& s = *impl_;
  if (s.threads.empty() || s.stopping) return false;
  struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    std::size_t left;
  };
  auto pending = std::make_shared<Pending>();
  pending->left = s.more_loops.size() + 1;
  auto ran = [pending] {
    std::lock_guard<std::mutex> lock(pending->mu);
    if (--pending->left == 0) pending->cv.notify_all();
  };
  asio::post(s.ioc, ran);
  for (auto& loop : s.more_loops) asio::post(*loop, ran);
  std::unique_lock<std::mutex> lock(pending->mu);
  return pending->cv.wait_for(lock, within, [&] { return pending->left == 0; });
}

void HttpServer::NotifyPublished() {
  std::uint64_t v = impl_->files->TimestampVersion();
  if (v > impl_->published_version) impl_->published_version = v;
  impl_->hub.Notify(v);
}

}  // namespace qp::server
