// One request and its answer on a Connection: the request written, the answer's header
// read (bounded), its body streamed to a sink with a cap. Every byte of the answer is
// untrusted; fuzzed by http_answer_fuzzer. Not thread-safe.
#pragma once

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "net/http_connection.h"

namespace qp::net {

struct Request {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string target;  // origin-form, or the absolute URL through a plain-HTTP proxy
  std::string host;    // the Host header
  std::string user_agent;
  std::optional<std::string> json_body;  // set: sent with Content-Type: application/json
  std::vector<std::string> headers;      // extra lines, "Name: value"
  std::uint64_t range_from = 0;          // > 0: "Range: bytes=N-"
};

struct AnswerHead {
  unsigned status = 0;
  std::string etag, retry_after, content_range;  // "" when absent
};

using BodySink = std::function<Status(std::span<const std::uint8_t>)>;

class Exchange {
 public:
  Exchange(Connection& connection, IoRunner& io);

  // Writes `request`. kInvalidArgument for an extra header that is not "Name: value" on one
  // line; kIo when the connection fails.
  Status Send(const Request& request);
  // Reads the answer's header: kIo when none arrives or it is malformed or over
  // Connection::kMaxHeaderBytes.
  Result<AnswerHead> ReadHead();
  // Streams the answer's body to `sink` as it arrives. kTooLarge as soon as more than
  // `max_bytes` have come (nothing more is read); the sink's own error stops it too.
  Status ReadBody(std::uint64_t max_bytes, const BodySink& sink);

  // The whole answer was read and the server keeps the connection open.
  bool reusable() const;
  // Some of an answer arrived (a failure before that, on a reused connection, means the
  // server had closed it while idle: the request may be sent again on a new one).
  bool answered() const { return answered_; }

 private:
  // Reads what the socket has and parses it (`bytes`: how many came from the socket).
  IoError ReadSome(std::size_t* bytes);

  Connection& connection_;
  IoRunner& io_;
  boost::beast::http::response_parser<boost::beast::http::buffer_body> parser_;
  bool answered_ = false;
};

}  // namespace qp::net
