#include "net/http_connection.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/beast/http.hpp>
#include <vector>

#include "core/clock.h"

namespace qp::net {
namespace http = beast::http;
namespace {

constexpr auto kTick = std::chrono::milliseconds(250);
// While a long poll waits for its answer only a cancel or the deadline can end it: an idle
// device's watch wakes once a second, not four times.
constexpr auto kLongPollTick = std::chrono::seconds(1);

std::string Seconds(std::chrono::steady_clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

std::string Base64(const std::string& text) {
  std::vector<unsigned char> out(4 * ((text.size() + 2) / 3) + 1);
  int n = EVP_EncodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  return std::string(reinterpret_cast<const char*>(out.data()), static_cast<std::size_t>(n));
}

}  // namespace

IoRunner::IoRunner() = default;

void IoRunner::Begin(const TransferLimits& limits, std::function<void()> abort) {
  limits_ = limits;
  abort_ = std::move(abort);
  failure_.clear();
  waited_ = false;
  active_ = true;
  SetPhase(Phase::kConnect);
  Arm();
}

void IoRunner::SetPhase(Phase phase) {
  phase_ = phase;
  auto now = Clock::Real()->Monotonic();
  if (phase == Phase::kConnect) connect_deadline_ = now + limits_.connect_timeout;
  window_start_ = now;
  window_bytes_ = 0;
}

void IoRunner::Progress(std::size_t bytes) { window_bytes_ += bytes; }

std::string IoRunner::End() {
  active_ = false;
  timer_.cancel();
  ioc_.restart();
  ioc_.poll();  // runs the cancelled timer's handler: nothing is left pending
  abort_ = nullptr;
  return failure_;
}

void IoRunner::Arm() {
  const bool waiting = phase_ == Phase::kAwaitAnswer && limits_.long_poll;
  timer_.expires_after(
      waiting ? std::chrono::duration_cast<std::chrono::milliseconds>(kLongPollTick) : kTick);
  timer_.async_wait([this](const IoError& ec) {
    if (ec || !active_) return;
    if (std::string why = Verdict(); !why.empty()) {
      failure_ = why;
      active_ = false;
      if (abort_) abort_();
      return;
    }
    if (phase_ == Phase::kAwaitAnswer && limits_.long_poll && limits_.waiting && !waited_ &&
        Clock::Real()->Monotonic() - window_start_ >= kLongPollTick) {
      waited_ = true;
      limits_.waiting();
    }
    Arm();
  });
}

std::string IoRunner::Verdict() {
  if (limits_.cancel != nullptr && limits_.cancel->load()) return "cancelled";
  auto now = Clock::Real()->Monotonic();
  if (now >= limits_.deadline) return "timed out";
  if (phase_ == Phase::kConnect) {
    if (now >= connect_deadline_) {
      return "no connection within " + Seconds(limits_.connect_timeout);
    }
    return "";
  }
  if (phase_ == Phase::kAwaitAnswer && limits_.long_poll) return "";
  if (limits_.low_speed_seconds <= 0) return "";
  auto window = std::chrono::seconds(limits_.low_speed_seconds);
  if (now - window_start_ < window) return "";
  if (window_bytes_ < static_cast<std::uint64_t>(limits_.low_speed_bytes) *
                          static_cast<std::uint64_t>(limits_.low_speed_seconds)) {
    return "too slow: " + std::to_string(window_bytes_) + " bytes in the last " +
           Seconds(now - window_start_);
  }
  window_start_ = now;
  window_bytes_ = 0;
  return "";
}

Connection::Connection(IoRunner& io, std::string key)
    : io_(io), key_(std::move(key)), resolver_(io.context()), socket_(io.context()) {}

std::unique_ptr<Connection> Connection::Adopt(IoRunner& io, tcp::socket socket) {
  auto c = std::make_unique<Connection>(io, "adopted");
  c->socket_ = std::move(socket);
  c->open_ = true;
  return c;
}

void Connection::Abort() {
  resolver_.cancel();
  IoError ignored;
  if (tls_) {
    tls_->next_layer().close(ignored);
  } else {
    socket_.close(ignored);
  }
  open_ = false;
}

Error Connection::Failed(const std::string& what, const IoError& ec) const {
  std::string why = io_.failure().empty() ? ec.message() : io_.failure();
  return Error(ErrorCode::kIo, what + ": " + why);
}

Status Connection::ConnectTcp(const Url& to) {
  tcp::resolver::results_type endpoints;
  IoError ec = io_.Await([&](auto done) {
    resolver_.async_resolve(to.host, std::to_string(to.port),
                            [&endpoints, done](const IoError& e, tcp::resolver::results_type r) {
                              endpoints = std::move(r);
                              done(e);
                            });
  });
  if (ec) return Failed("cannot resolve " + to.host, ec);
  ec = io_.Await([&](auto done) {
    asio::async_connect(socket_, endpoints,
                        [done](const IoError& e, const tcp::endpoint&) { done(e); });
  });
  if (ec) return Failed("cannot connect to " + to.Authority(), ec);
  socket_.set_option(tcp::no_delay(true), ec);
  return OkStatus();
}

Status Connection::Tunnel(const Url& origin, const std::string& user_agent) {
  http::request<http::empty_body> connect{http::verb::connect, origin.Authority(), 11};
  connect.set(http::field::host, origin.Authority());
  connect.set(http::field::user_agent, user_agent);
  if (!proxy_authorization_.empty()) {
    connect.set(http::field::proxy_authorization, proxy_authorization_);
  }
  IoError ec = io_.Await([&](auto done) {
    http::async_write(socket_, connect, [done](const IoError& e, std::size_t) { done(e); });
  });
  if (ec) return Failed("proxy CONNECT to " + origin.Authority(), ec);
  io_.SetPhase(IoRunner::Phase::kConnect);
  http::response_parser<http::empty_body> answer;
  answer.header_limit(kMaxHeaderBytes);
  answer.skip(true);  // an answer to CONNECT has no body: the tunnel follows the header
  ec = io_.Await([&](auto done) {
    http::async_read_header(socket_, buffer_, answer,
                            [done](const IoError& e, std::size_t) { done(e); });
  });
  if (ec) return Failed("proxy CONNECT to " + origin.Authority(), ec);
  unsigned status = answer.get().result_int();
  if (status != 200) {
    return Error(ErrorCode::kIo, "proxy refused CONNECT to " + origin.Authority() + ": HTTP " +
                                     std::to_string(status));
  }
  if (buffer_.size() != 0) {
    return Error(ErrorCode::kIo, "proxy sent bytes before the TLS handshake");
  }
  return OkStatus();
}

Status Connection::Handshake(const Url& origin, asio::ssl::context& tls) {
  tls_.emplace(std::move(socket_), tls);
  SSL* ssl = tls_->native_handle();
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (IsIpAddress(origin.host)) {
    // An address is checked against the certificate's IP names; SNI carries names only.
    if (X509_VERIFY_PARAM_set1_ip_asc(param, origin.host.c_str()) != 1) {
      return Error(ErrorCode::kInternal, "TLS: cannot set the expected address");
    }
  } else {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_host(param, origin.host.c_str(), origin.host.size()) != 1 ||
        SSL_set_tlsext_host_name(ssl, origin.host.c_str()) != 1) {
      return Error(ErrorCode::kInternal, "TLS: cannot set the expected host name");
    }
  }
  IoError ec = io_.Await([&](auto done) {
    tls_->async_handshake(asio::ssl::stream_base::client, [done](const IoError& e) { done(e); });
  });
  if (ec) {
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK && io_.failure().empty()) {
      return Error(ErrorCode::kIo,
                   "TLS handshake with " + origin.Authority() +
                       ": certificate not trusted: " + X509_verify_cert_error_string(verify));
    }
    return Failed("TLS handshake with " + origin.Authority(), ec);
  }
  return OkStatus();
}

Status Connection::Open(const Url& origin, const std::optional<Url>& proxy, asio::ssl::context* tls,
                        const std::string& user_agent) {
  if (proxy && !proxy->userinfo.empty()) {
    proxy_authorization_ = "Basic " + Base64(proxy->userinfo);
  }
  QP_RETURN_IF_ERROR(ConnectTcp(proxy ? *proxy : origin));
  if (origin.https) {
    if (proxy) QP_RETURN_IF_ERROR(Tunnel(origin, user_agent));
    if (tls == nullptr) return Error(ErrorCode::kInternal, "https without a TLS context");
    QP_RETURN_IF_ERROR(Handshake(origin, *tls));
  } else {
    absolute_targets_ = proxy.has_value();
  }
  open_ = true;
  return OkStatus();
}

Result<std::unique_ptr<asio::ssl::context>> MakeTlsContext(const std::string& ca_file) {
  auto tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::no_compression);
  // An idle connection (the watch) keeps no read or write buffers.
  SSL_CTX_set_mode(tls->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  tls->set_verify_mode(asio::ssl::verify_peer);
  IoError ec;
  if (ca_file.empty()) {
    tls->set_default_verify_paths(ec);
  } else {
    tls->load_verify_file(ca_file, ec);
  }
  if (ec) {
    return Error(ErrorCode::kInvalidArgument,
                 "CA " + (ca_file.empty() ? std::string("store") : ca_file) + ": " + ec.message());
  }
  return tls;
}

}  // namespace qp::net
