// Test helper: a scripted HTTP(S) peer on loopback. Each accepted connection is handed to
// the test's script on the peer's thread, one connection after another, so that a test
// plays any server (or proxy) byte by byte: honest, slow, endless, lying or gone.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace qp::net {

// One accepted connection, plain or TLS.
class PeerConnection {
 public:
  virtual ~PeerConnection() = default;
  // The next request: its header lines and its body (by Content-Length); "" once the client
  // has closed the connection.
  virtual std::string ReadRequest() = 0;
  virtual bool Write(std::string_view bytes) = 0;
  // Raw socket access (a proxy relays through it); -1 over TLS.
  virtual int fd() = 0;
  // The name the client asked for with SNI ("" when none, or plain).
  virtual std::string server_name() = 0;
};

class TestHttpPeer {
 public:
  using Script = std::function<void(PeerConnection&)>;
  // Plain HTTP; or TLS with the given PEM certificate and key.
  explicit TestHttpPeer(Script script, const std::string& cert_file = "",
                        const std::string& key_file = "");
  ~TestHttpPeer();
  TestHttpPeer(const TestHttpPeer&) = delete;
  TestHttpPeer& operator=(const TestHttpPeer&) = delete;

  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  // True once the peer is being destroyed: a stalling script returns then.
  bool stopping() const { return stopping_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// "HTTP/1.1 <status>\r\nContent-Length: N\r\n<extra>\r\n<body>".
std::string Answer(int status, std::string_view body, std::string_view extra_headers = "");

}  // namespace qp::net
