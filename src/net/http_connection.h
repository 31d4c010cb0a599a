// One HTTP/1.1 connection of the device's HTTP client: plain or TLS, direct or through a
// proxy (CONNECT for https), run synchronously on a private io_context (IoRunner) whose
// watchdog ends any operation on cancel, on its deadline, when connecting takes too long or
// when a transfer stalls. Not thread-safe: one IoRunner and its connections per thread.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/result.h"
#include "net/url.h"

namespace qp::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using IoError = boost::system::error_code;

// What ends an exchange early. Checked every 250 ms (every second while a long poll waits
// for its answer).
struct TransferLimits {
  // The whole exchange, connection included (max(): no overall limit).
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::chrono::seconds connect_timeout{15};
  // Fewer than low_speed_bytes per second over low_speed_seconds abandons the exchange
  // (slow retrieval); waiting for the answer's header counts, unless long_poll.
  long low_speed_bytes = 64;
  long low_speed_seconds = 30;
  bool long_poll = false;  // the server may hold the answer until the deadline (a watch)
  const std::atomic<bool>* cancel = nullptr;  // set: abandoned within a second
  // A long poll whose answer has not come a second after its request went calls this, once,
  // on the exchange's thread: the caller may rest for as long as the server holds the
  // answer. An answer that comes within the second (news, an error) never calls it.
  std::function<void()> waiting;
};

class IoRunner {
 public:
  enum class Phase { kConnect, kAwaitAnswer, kTransfer };

  IoRunner();
  IoRunner(const IoRunner&) = delete;
  IoRunner& operator=(const IoRunner&) = delete;

  asio::io_context& context() { return ioc_; }

  // Watches a new exchange. `abort` closes whatever the exchange waits on; the operation
  // then completes with an error and failure() says why.
  void Begin(const TransferLimits& limits, std::function<void()> abort);
  void SetPhase(Phase phase);
  void Progress(std::size_t bytes);
  // Stops watching. Returns why the watchdog ended the exchange ("" when it did not).
  std::string End();
  const std::string& failure() const { return failure_; }

  // Starts an asynchronous operation (`initiate` receives a completion handler taking an
  // error code) and runs the io_context until that operation completes.
  template <class Initiate>
  IoError Await(Initiate&& initiate) {
    bool done = false;
    IoError result;
    initiate([&done, &result](const IoError& ec) {
      result = ec;
      done = true;
    });
    ioc_.restart();
    while (!done && ioc_.run_one() > 0) {
    }
    return done ? result : IoError(asio::error::operation_aborted);
  }

 private:
  void Arm();
  // Why the exchange must end now ("" to go on).
  std::string Verdict();

  asio::io_context ioc_{1};
  asio::steady_timer timer_{ioc_};
  bool active_ = false;
  TransferLimits limits_;
  std::function<void()> abort_;
  Phase phase_ = Phase::kConnect;
  std::chrono::steady_clock::time_point connect_deadline_, window_start_;
  std::uint64_t window_bytes_ = 0;
  bool waited_ = false;  // limits_.waiting was called
  std::string failure_;
};

class Connection {
 public:
  // Headers of an answer (and of a proxy's answer to CONNECT) beyond this are refused.
  static constexpr std::size_t kMaxHeaderBytes = 16 << 10;

  // `key` names what the connection reaches (origin and proxy), to reuse it for the same.
  Connection(IoRunner& io, std::string key);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  // A connection over a socket already connected (plain HTTP; tests and fuzzers).
  static std::unique_ptr<Connection> Adopt(IoRunner& io, tcp::socket socket);

  // Resolves and connects to `origin`, or to `proxy` when set (then, for https, tunnels
  // with CONNECT). For https, shakes hands with SNI and verifies the certificate chain
  // against `tls`'s CAs and the certificate's name against origin.host. kIo with the cause
  // (the watchdog's when it ended it) on failure.
  Status Open(const Url& origin, const std::optional<Url>& proxy, asio::ssl::context* tls,
              const std::string& user_agent);

  // Calls f with the stream to read and write (a TCP socket or a TLS stream over one).
  template <class F>
  decltype(auto) WithStream(F&& f) {
    if (tls_) return f(*tls_);
    return f(socket_);
  }
  // Closes the socket: any pending operation ends with an error. Safe to repeat.
  void Abort();
  bool is_open() const { return open_; }
  const std::string& key() const { return key_; }
  beast::flat_buffer& buffer() { return buffer_; }
  // Plain HTTP through a proxy: requests carry the absolute URL as their target.
  bool absolute_targets() const { return absolute_targets_; }
  const std::string& proxy_authorization() const { return proxy_authorization_; }

 private:
  Status ConnectTcp(const Url& to);
  Status Tunnel(const Url& origin, const std::string& user_agent);
  Status Handshake(const Url& origin, asio::ssl::context& tls);
  Error Failed(const std::string& what, const IoError& ec) const;

  IoRunner& io_;
  std::string key_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  std::optional<asio::ssl::stream<tcp::socket>> tls_;
  beast::flat_buffer buffer_{2 * kMaxHeaderBytes};
  bool open_ = false;
  bool absolute_targets_ = false;
  std::string proxy_authorization_;  // "Basic ..." for the proxy, from its URL's userinfo
};

// Makes the TLS client context: TLS 1.2 or later, peers verified against `ca_file`, or
// the system's CA store when it is empty. kInvalidArgument when the file does not load.
Result<std::unique_ptr<asio::ssl::context>> MakeTlsContext(const std::string& ca_file);

}  // namespace qp::net
