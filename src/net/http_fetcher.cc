#include "net/http_fetcher.h"

#include "core/clock.h"
#include "net/http_connection.h"
#include "net/http_exchange.h"

namespace qp::net {
namespace http = beast::http;
namespace {

Error WithUrl(const std::string& url, const Error& e) {
  return Error(e.code(), url + ": " + e.message());
}

// The Host header: the port only when the URL names one that is not the scheme's.
std::string HostHeader(const Url& url) {
  bool default_port = url.port == (url.https ? 443 : 80);
  if (!default_port) return url.Authority();
  return url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
}

// The options' limits, with a deadline `timeout_seconds` from now (none when 0).
TransferLimits Limits(const HttpOptions& options, long timeout_seconds) {
  TransferLimits limits;
  limits.connect_timeout = std::chrono::seconds(options.connect_timeout_seconds);
  limits.low_speed_bytes = options.low_speed_bytes;
  limits.low_speed_seconds = options.low_speed_seconds;
  if (timeout_seconds > 0) {
    limits.deadline = Clock::Real()->Monotonic() + std::chrono::seconds(timeout_seconds);
  }
  return limits;
}

}  // namespace

struct HttpFetcher::Impl {
  IoRunner io;
  std::unique_ptr<asio::ssl::context> tls;  // made at the first https request
  std::unique_ptr<Connection> connection;   // kept alive between requests
};

struct HttpFetcher::Call {
  Request request;
  TransferLimits limits;
  // From the answer's header: read the body (true), leave it unread (false: the connection
  // is then closed), or stop with an error.
  std::function<Result<bool>(const AnswerHead&)> on_head;
  std::uint64_t max_body = 0;
  BodySink sink;
};

HttpFetcher::HttpFetcher(HttpOptions options)
    : impl_(std::make_unique<Impl>()), options_(std::move(options)) {}

HttpFetcher::~HttpFetcher() = default;

void HttpFetcher::CloseIdleConnection() { impl_->connection.reset(); }

Result<long> HttpFetcher::Perform(const std::string& url_text, Call& call) {
  auto url = ParseUrl(url_text);
  if (!url.ok()) return url.error();
  auto proxy = ProxyFor(*url, options_.proxies);
  if (!proxy.ok()) return WithUrl(url_text, proxy.error());
  if (url->https && impl_->tls == nullptr) {
    auto tls = MakeTlsContext(options_.ca_file);
    if (!tls.ok()) return WithUrl(url_text, tls.error());
    impl_->tls = std::move(*tls);
  }
  const std::string key = url->Origin() + (*proxy ? " via " + (*proxy)->Origin() : "");
  call.request.host = HostHeader(*url);
  call.request.user_agent = options_.user_agent;
  ++request_count_;

  IoRunner& io = impl_->io;
  auto& connection = impl_->connection;
  io.Begin(call.limits, [&connection] {
    if (connection) connection->Abort();
  });
  struct Ender {
    IoRunner& io;
    ~Ender() { io.End(); }
  } ender{io};

  for (int attempt = 0;; ++attempt) {
    const bool reused = connection && connection->is_open() && connection->key() == key;
    if (!reused) {
      connection = std::make_unique<Connection>(io, key);
      io.SetPhase(IoRunner::Phase::kConnect);
      if (Status s = connection->Open(*url, *proxy, impl_->tls.get(), options_.user_agent);
          !s.ok()) {
        connection.reset();
        return WithUrl(url_text, s.error());
      }
    }
    call.request.target = connection->absolute_targets() ? (url->https ? "https://" : "http://") +
                                                               call.request.host + url->target
                                                         : url->target;
    Exchange exchange(*connection, io);
    Status sent = exchange.Send(call.request);
    Result<AnswerHead> head = sent.ok() ? exchange.ReadHead() : Result<AnswerHead>(sent.error());
    if (!head.ok()) {
      connection.reset();
      // A kept connection that the server closed while it was idle fails at once with no
      // answer at all: the request never reached it. Once more, on a new connection.
      if (reused && attempt == 0 && !exchange.answered() && io.failure().empty() &&
          head.error().code() == ErrorCode::kIo) {
        continue;
      }
      return WithUrl(url_text, head.error());
    }
    auto read_body = call.on_head(*head);
    if (!read_body.ok()) {
      connection.reset();
      return read_body.error();
    }
    if (*read_body) {
      if (Status s = exchange.ReadBody(call.max_body, call.sink); !s.ok()) {
        connection.reset();
        return WithUrl(url_text, s.error());
      }
    }
    if (exchange.reusable()) {
      connection->buffer().shrink_to_fit();
    } else {
      connection.reset();
    }
    return static_cast<long>(head->status);
  }
}

Result<std::vector<std::uint8_t>> HttpFetcher::Fetch(const std::string& url,
                                                     std::uint64_t max_length) {
  last_fetch_etag_.clear();
  std::vector<std::uint8_t> bytes;
  std::string etag;
  Call call;
  call.limits = Limits(options_, options_.total_timeout_seconds);
  call.on_head = [&](const AnswerHead& head) -> Result<bool> {
    if (head.status == 403 || head.status == 404) {
      return Error(ErrorCode::kNotFound, url + ": HTTP " + std::to_string(head.status));
    }
    if (head.status < 200 || head.status >= 300) {
      return Error(ErrorCode::kIo, url + ": HTTP " + std::to_string(head.status));
    }
    etag = head.etag;
    return true;
  };
  call.max_body = max_length;
  call.sink = [&bytes](std::span<const std::uint8_t> piece) {
    bytes.insert(bytes.end(), piece.begin(), piece.end());
    return OkStatus();
  };
  QP_RETURN_IF_ERROR(Perform(url, call));
  last_fetch_etag_ = etag;
  return bytes;
}

Result<std::uint64_t> HttpFetcher::DownloadToFile(Env* env, const std::string& url,
                                                  const std::string& partial_path,
                                                  std::uint64_t max_length) {
  auto info = env->Stat(partial_path);
  std::uint64_t have = info.ok() ? info->size : 0;
  if (have > max_length) {
    (void)env->Unlink(partial_path);
    have = 0;
  }
  if (have == max_length && have > 0) return have;

  std::unique_ptr<WritableFile> file;
  std::uint64_t written = 0;
  Call call;
  call.request.range_from = have;
  call.limits = Limits(options_, options_.total_timeout_seconds);
  call.on_head = [&](const AnswerHead& head) -> Result<bool> {
    if (head.status == 416) {
      // The server cannot resume from there: start over next time.
      (void)env->Unlink(partial_path);
      return Error(ErrorCode::kIo, url + ": range not satisfiable; restarting the download");
    }
    if (head.status == 403 || head.status == 404) {
      return Error(ErrorCode::kNotFound, url + ": HTTP " + std::to_string(head.status));
    }
    if (head.status != 200 && head.status != 206) {
      return Error(ErrorCode::kIo, url + ": HTTP " + std::to_string(head.status));
    }
    CreateMode mode = CreateMode::kTruncate;
    if (head.status == 206) {
      if (have == 0 || !head.content_range.starts_with("bytes " + std::to_string(have) + "-")) {
        (void)env->Unlink(partial_path);
        return Error(ErrorCode::kIo, url + ": resumed at another offset than asked (" +
                                         head.content_range.substr(0, 80) + "); restarting");
      }
      mode = CreateMode::kAppend;
      written = have;
    }  // 200: the whole file (the server ignored the range): written from the start
    auto opened = env->NewWritableFile(partial_path, mode, 0600);
    if (!opened.ok()) return opened.error();
    file = std::move(*opened);
    call.max_body = max_length - written;
    return true;
  };
  call.sink = [&](std::span<const std::uint8_t> piece) -> Status {
    QP_RETURN_IF_ERROR(file->Append(piece));
    written += piece.size();
    return OkStatus();
  };
  auto performed = Perform(url, call);
  if (file != nullptr) {
    Status synced = file->Sync();
    Status closed = file->Close();
    if (performed.ok() && !synced.ok()) return synced.error();
    if (performed.ok() && !closed.ok()) return closed.error();
  }
  if (!performed.ok()) {
    if (performed.error().code() == ErrorCode::kTooLarge) {
      (void)env->Unlink(partial_path);
      return Error(ErrorCode::kTooLarge,
                   url + ": more than the allowed " + std::to_string(max_length) + " bytes");
    }
    if (file != nullptr && performed.error().code() == ErrorCode::kIo) {
      return Error(ErrorCode::kIo, performed.error().message() + " (" + std::to_string(written) +
                                       " bytes kept to resume)");
    }
    return performed.error();
  }
  return written;
}

Result<HttpFetcher::Response> HttpFetcher::Ask(const std::string& url,
                                               std::optional<std::string> post_body,
                                               const std::vector<std::string>& extra_headers,
                                               long timeout_seconds, std::size_t max_response,
                                               const std::atomic<bool>* cancel,
                                               std::function<void()> waiting) {
  Response out;
  Call call;
  call.request.method = post_body ? http::verb::post : http::verb::get;
  call.request.json_body = std::move(post_body);
  call.request.headers = extra_headers;
  call.limits = Limits(options_, timeout_seconds);
  call.limits.long_poll = !call.request.json_body.has_value();
  call.limits.cancel = cancel;
  call.limits.waiting = std::move(waiting);
  call.on_head = [&out](const AnswerHead& head) -> Result<bool> {
    out.retry_after = head.retry_after;
    out.etag = head.etag;
    return true;
  };
  call.max_body = max_response;
  call.sink = [&out](std::span<const std::uint8_t> piece) {
    out.body.append(reinterpret_cast<const char*>(piece.data()), piece.size());
    return OkStatus();
  };
  QP_ASSIGN_OR_RETURN(out.status, Perform(url, call));
  return out;
}

Result<HttpFetcher::Response> HttpFetcher::PostJson(const std::string& url, const std::string& body,
                                                    const std::vector<std::string>& headers,
                                                    std::size_t max_response) {
  long timeout = options_.total_timeout_seconds > 0 ? options_.total_timeout_seconds : 60;
  return Ask(url, body, headers, timeout, max_response, nullptr);
}

Result<HttpFetcher::Response> HttpFetcher::Get(const std::string& url, long timeout_seconds,
                                               std::size_t max_response,
                                               const std::atomic<bool>* cancel,
                                               const std::vector<std::string>& headers,
                                               std::function<void()> waiting) {
  return Ask(url, std::nullopt, headers, timeout_seconds, max_response, cancel, std::move(waiting));
}

}  // namespace qp::net
