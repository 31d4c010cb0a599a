#include "net/http_exchange.h"

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <limits>

#include "core/ascii.h"

namespace qp::net {
namespace http = beast::http;
namespace {

// A body arrives in pieces of at most this much (allocated for the transfer only).
constexpr std::size_t kChunkBytes = 32 << 10;

bool IsToken(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string Field(const http::response_header<>& h, http::field f) {
  auto it = h.find(f);
  return it == h.end() ? std::string() : std::string(it->value());
}

}  // namespace

Exchange::Exchange(Connection& connection, IoRunner& io) : connection_(connection), io_(io) {
  parser_.header_limit(Connection::kMaxHeaderBytes);
  parser_.body_limit(
      std::numeric_limits<std::uint64_t>::max());  // the caller's cap applies, in ReadBody
}

Status Exchange::Send(const Request& request) {
  http::request<http::string_body> req{request.method, request.target, 11};
  req.set(http::field::host, request.host);
  req.set(http::field::user_agent, request.user_agent);
  if (!connection_.proxy_authorization().empty() && connection_.absolute_targets()) {
    req.set(http::field::proxy_authorization, connection_.proxy_authorization());
  }
  for (const auto& line : request.headers) {
    std::size_t colon = line.find(':');
    if (line.find_first_of("\r\n") != std::string::npos || colon == std::string::npos ||
        !IsToken(std::string_view(line).substr(0, colon))) {
      return Error(ErrorCode::kInvalidArgument, "header is not one \"Name: value\" line");
    }
    std::string_view value = TrimBlanks(std::string_view(line).substr(colon + 1));
    req.insert(beast::string_view(line.data(), colon),
               beast::string_view(value.data(), value.size()));
  }
  if (request.range_from > 0) {
    req.set(http::field::range, "bytes=" + std::to_string(request.range_from) + "-");
  }
  if (request.json_body) {
    req.set(http::field::content_type, "application/json");
    req.body() = *request.json_body;
  }
  req.prepare_payload();
  IoError ec = connection_.WithStream([&](auto& stream) {
    return io_.Await([&](auto done) {
      http::async_write(stream, req, [done](const IoError& e, std::size_t) { done(e); });
    });
  });
  if (ec) return Error(ErrorCode::kIo, io_.failure().empty() ? ec.message() : io_.failure());
  io_.SetPhase(IoRunner::Phase::kAwaitAnswer);
  return OkStatus();
}

Result<AnswerHead> Exchange::ReadHead() {
  while (!parser_.is_header_done()) {
    std::size_t n = 0;
    IoError ec = ReadSome(&n);
    if (n > 0 || parser_.got_some()) answered_ = true;
    io_.Progress(n);
    if (ec == http::error::need_buffer) break;  // the header is done; a body follows
    if (ec) {
      return Error(ErrorCode::kIo,
                   "no answer: " + (io_.failure().empty() ? ec.message() : io_.failure()));
    }
  }
  io_.SetPhase(IoRunner::Phase::kTransfer);
  const auto& h = parser_.get();
  AnswerHead head;
  head.status = h.result_int();
  head.etag = Field(h, http::field::etag);
  head.retry_after = Field(h, http::field::retry_after);
  head.content_range = Field(h, http::field::content_range);
  return head;
}

Status Exchange::ReadBody(std::uint64_t max_bytes, const BodySink& sink) {
  std::vector<std::uint8_t> chunk;
  std::uint64_t total = 0;
  while (!parser_.is_done()) {
    if (chunk.empty()) chunk.resize(kChunkBytes);
    auto& body = parser_.get().body();
    body.data = chunk.data();
    body.size = chunk.size();
    std::size_t n = 0;
    IoError ec = ReadSome(&n);
    io_.Progress(n);
    std::size_t got = chunk.size() - parser_.get().body().size;
    if (ec == http::error::need_buffer) ec = {};
    if (got > 0) {
      if (total + got > max_bytes) {
        return Error(ErrorCode::kTooLarge,
                     "more than the allowed " + std::to_string(max_bytes) + " bytes");
      }
      total += got;
      QP_RETURN_IF_ERROR(sink(std::span<const std::uint8_t>(chunk.data(), got)));
    }
    if (ec) {
      return Error(ErrorCode::kIo, "answer cut after " + std::to_string(total) + " bytes: " +
                                       (io_.failure().empty() ? ec.message() : io_.failure()));
    }
  }
  return OkStatus();
}

IoError Exchange::ReadSome(std::size_t* bytes) {
  return connection_.WithStream([&](auto& stream) {
    return io_.Await([&](auto done) {
      http::async_read_some(stream, connection_.buffer(), parser_,
                            [done, bytes](const IoError& e, std::size_t k) {
                              *bytes = k;
                              done(e);
                            });
    });
  });
}

bool Exchange::reusable() const { return parser_.is_done() && parser_.get().keep_alive(); }

}  // namespace qp::net
