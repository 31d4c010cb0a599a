#include "net/test_http_peer.h"

#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>

namespace qp::net {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
namespace {

template <class Stream>
std::string ReadOneRequest(Stream& stream, std::string& pending) {
  boost::system::error_code ec;
  std::size_t end = asio::read_until(stream, asio::dynamic_buffer(pending), "\r\n\r\n", ec);
  if (ec && end == 0) return "";
  std::string head = pending.substr(0, end);
  pending.erase(0, end);
  std::size_t length = 0;
  for (std::size_t at = 0; (at = head.find('\n', at)) != std::string::npos;) {
    ++at;
    if (head.compare(at, 15, "Content-Length:") == 0 ||
        head.compare(at, 15, "content-length:") == 0) {
      length = std::strtoul(head.c_str() + at + 15, nullptr, 10);
    }
  }
  if (pending.size() < length) {
    asio::read(stream, asio::dynamic_buffer(pending),
               asio::transfer_exactly(length - pending.size()), ec);
  }
  std::string body = pending.substr(0, std::min(length, pending.size()));
  pending.erase(0, body.size());
  return head + body;
}

class PlainConnection final : public PeerConnection {
 public:
  explicit PlainConnection(tcp::socket socket) : socket_(std::move(socket)) {}
  std::string ReadRequest() override { return ReadOneRequest(socket_, pending_); }
  bool Write(std::string_view bytes) override {
    boost::system::error_code ec;
    asio::write(socket_, asio::buffer(bytes.data(), bytes.size()), ec);
    return !ec;
  }
  int fd() override { return socket_.native_handle(); }
  std::string server_name() override { return ""; }

 private:
  tcp::socket socket_;
  std::string pending_;
};

class TlsConnection final : public PeerConnection {
 public:
  TlsConnection(tcp::socket socket, asio::ssl::context& tls) : stream_(std::move(socket), tls) {}
  bool Handshake() {
    boost::system::error_code ec;
    stream_.handshake(asio::ssl::stream_base::server, ec);
    return !ec;
  }
  std::string ReadRequest() override { return ReadOneRequest(stream_, pending_); }
  bool Write(std::string_view bytes) override {
    boost::system::error_code ec;
    asio::write(stream_, asio::buffer(bytes.data(), bytes.size()), ec);
    return !ec;
  }
  int fd() override { return -1; }
  std::string server_name() override {
    const char* name = SSL_get_servername(stream_.native_handle(), TLSEXT_NAMETYPE_host_name);
    return name != nullptr ? name : "";
  }

 private:
  asio::ssl::stream<tcp::socket> stream_;
  std::string pending_;
};

}  // namespace

struct TestHttpPeer::Impl {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::unique_ptr<asio::ssl::context> tls;
};

TestHttpPeer::TestHttpPeer(Script script, const std::string& cert_file, const std::string& key_file)
    : impl_(std::make_unique<Impl>()) {
  port_ = impl_->acceptor.local_endpoint().port();
  if (!cert_file.empty()) {
    impl_->tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    impl_->tls->use_certificate_chain_file(cert_file);
    impl_->tls->use_private_key_file(key_file, asio::ssl::context::pem);
  }
  thread_ = std::thread([this, script = std::move(script)] {
    while (!stopping_) {
      boost::system::error_code ec;
      tcp::socket socket = impl_->acceptor.accept(ec);
      if (ec || stopping_) return;
      ++connections_;
      if (impl_->tls) {
        TlsConnection connection(std::move(socket), *impl_->tls);
        if (connection.Handshake()) script(connection);
      } else {
        PlainConnection connection(std::move(socket));
        script(connection);
      }
    }
  });
}

TestHttpPeer::~TestHttpPeer() {
  stopping_ = true;
  // Wakes the accept (a script waiting on stopping() returns by itself).
  boost::system::error_code ec;
  tcp::socket wake(impl_->ioc);
  wake.connect(impl_->acceptor.local_endpoint(), ec);
  thread_.join();
}

std::string Answer(int status, std::string_view body, std::string_view extra_headers) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra_headers) + "\r\n" + std::string(body);
}

}  // namespace qp::net
