// Fuzzes what the device's HTTP client reads from a server: the bytes become a server's
// whole answer on a loopback connection, and the client writes its request, reads the
// answer's header and streams its body under a 1 MiB cap, as HttpFetcher does.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <cstddef>
#include <cstdint>

#include "net/http_connection.h"
#include "net/http_exchange.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using qp::net::tcp;
  namespace asio = boost::asio;
  if (size > (64 << 10)) return 0;  // fits the loopback socket buffers: written before reading
  static auto* io = new qp::net::IoRunner;
  static auto* acceptor =
      new tcp::acceptor(io->context(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(io->context());
  client.connect(acceptor->local_endpoint());
  tcp::socket server = acceptor->accept();
  asio::write(server, asio::buffer(data, size));
  server.shutdown(tcp::socket::shutdown_send);  // the answer ends; the request stays unread

  auto connection = qp::net::Connection::Adopt(*io, std::move(client));
  qp::net::TransferLimits limits;
  limits.low_speed_seconds = 0;
  io->Begin(limits, [&connection] { connection->Abort(); });
  qp::net::Exchange exchange(*connection, *io);
  qp::net::Request request;
  request.target = "/repo/metadata/timestamp.json";
  request.host = "127.0.0.1";
  request.user_agent = "quietpatch-fuzz";
  request.range_from = 10;
  std::uint64_t received = 0;
  if (exchange.Send(request).ok() && exchange.ReadHead().ok()) {
    (void)exchange.ReadBody(1 << 20, [&received](std::span<const std::uint8_t> piece) {
      received += piece.size();
      return qp::OkStatus();
    });
  }
  io->End();
  if (received > (1 << 20)) __builtin_trap();  // the cap held
  return 0;
}
