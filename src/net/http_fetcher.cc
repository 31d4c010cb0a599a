#include "net/http_fetcher.h"

#include <curl/curl.h>

#include <mutex>
#include <optional>
#include <span>

namespace qp::net {
namespace {

struct Body {
  CURL* curl = nullptr;
  std::vector<std::uint8_t> bytes;
  std::uint64_t max_length = 0;
  bool too_large = false;
};

std::size_t OnData(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<Body*>(user);
  std::size_t n = size * count;
  if (body->curl != nullptr) {
    long status = 0;
    curl_easy_getinfo(body->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 300) return n;  // an error page: dropped, the status says it all
  }
  if (body->bytes.size() + n > body->max_length) {
    body->too_large = true;
    return 0;  // aborts the transfer
  }
  body->bytes.insert(body->bytes.end(), data, data + n);
  return n;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct FileSink {
  CURL* curl = nullptr;
  WritableFile* file = nullptr;
  std::uint64_t written = 0;
  std::uint64_t max_length = 0;
  bool too_large = false;
  std::optional<Error> write_error;
};

std::size_t OnFileData(char* data, std::size_t size, std::size_t count, void* user) {
  auto* sink = static_cast<FileSink*>(user);
  std::size_t n = size * count;
  long status = 0;
  curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 300) return n;
  if (sink->written + n > sink->max_length) {
    sink->too_large = true;
    return 0;
  }
  Status s = sink->file->Append(std::span(reinterpret_cast<const std::uint8_t*>(data), n));
  if (!s.ok()) {
    sink->write_error = s.error();
    return 0;
  }
  sink->written += n;
  return n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel != nullptr && cancel->load() ? 1 : 0;
}

struct HeaderSink {
  std::string retry_after, etag;
};

// The headers kept from an answer (each bounded: a header line is short or ignored).
std::size_t OnHeader(char* data, std::size_t size, std::size_t count, void* user) {
  auto* sink = static_cast<HeaderSink*>(user);
  const std::size_t n = size * count;
  if (n > 1024) return n;
  std::string line(data, n);
  std::size_t colon = line.find(':');
  if (colon == std::string::npos) return n;
  std::string name = line.substr(0, colon);
  for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string v = line.substr(colon + 1);
  while (!v.empty() && (v.front() == ' ')) v.erase(0, 1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
  if (name == "retry-after") sink->retry_after = v;
  if (name == "etag") sink->etag = v;
  return n;
}

}  // namespace

struct HttpFetcher::Impl {
  CURL* curl = nullptr;
  ~Impl() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
};

HttpFetcher::HttpFetcher(HttpOptions options)
    : impl_(std::make_unique<Impl>()), options_(std::move(options)) {
  GlobalInit();
}

HttpFetcher::~HttpFetcher() = default;

CURL* HttpFetcher::Prepare(const std::string& url, char* error_buffer) {
  if (impl_->curl == nullptr) impl_->curl = curl_easy_init();
  CURL* curl = impl_->curl;
  if (curl == nullptr) return nullptr;
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, options_.connect_timeout_seconds);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_bytes);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options_.low_speed_seconds);
  if (options_.total_timeout_seconds > 0) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, options_.total_timeout_seconds);
  }
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  ++request_count_;
  return curl;
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
  char error_buffer[CURL_ERROR_SIZE] = {0};
  CURL* curl = Prepare(url, error_buffer);
  if (curl == nullptr) return Error(ErrorCode::kInternal, "curl_easy_init failed");
  auto file = env->NewWritableFile(partial_path,
                                   have > 0 ? CreateMode::kAppend : CreateMode::kTruncate, 0600);
  if (!file.ok()) return file.error();
  FileSink sink;
  sink.curl = curl;
  sink.file = file->get();
  sink.written = have;
  sink.max_length = max_length;
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnFileData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  if (have > 0) curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(have));
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  Status synced = (*file)->Sync();
  Status closed = (*file)->Close();
  if (sink.too_large) {
    (void)env->Unlink(partial_path);
    return Error(ErrorCode::kTooLarge,
                 url + ": more than the allowed " + std::to_string(max_length) + " bytes");
  }
  if (sink.write_error) return *sink.write_error;
  if (!synced.ok()) return synced.error();
  if (!closed.ok()) return closed.error();
  if (rc == CURLE_RANGE_ERROR || status == 416) {
    // The server cannot resume from there: start over next time.
    (void)env->Unlink(partial_path);
    return Error(ErrorCode::kIo, url + ": range not satisfiable; restarting the download");
  }
  if (have > 0 && status == 200) {
    // The server ignored the range and sent everything after our partial bytes: the file
    // is unusable; start over.
    (void)env->Unlink(partial_path);
    return Error(ErrorCode::kIo, url + ": server does not resume; restarting the download");
  }
  if (rc != CURLE_OK) {
    return Error(ErrorCode::kIo,
                 url + ": " + (error_buffer[0] != 0 ? error_buffer : curl_easy_strerror(rc)) +
                     " (" + std::to_string(sink.written) + " bytes kept to resume)");
  }
  if (status == 403 || status == 404) {
    return Error(ErrorCode::kNotFound, url + ": HTTP " + std::to_string(status));
  }
  if (status < 200 || status >= 300) {
    return Error(ErrorCode::kIo, url + ": HTTP " + std::to_string(status));
  }
  return sink.written;
}

Result<HttpFetcher::Response> HttpFetcher::Request(const std::string& url,
                                                   const std::string* post_body,
                                                   const std::vector<std::string>& extra_headers,
                                                   long timeout_seconds, std::size_t max_response,
                                                   const std::atomic<bool>* cancel) {
  char error_buffer[CURL_ERROR_SIZE] = {0};
  CURL* curl = Prepare(url, error_buffer);
  if (curl == nullptr) return Error(ErrorCode::kInternal, "curl_easy_init failed");
  Body response;
  response.curl = nullptr;
  response.max_length = max_response;
  HeaderSink headers;
  struct curl_slist* list = nullptr;
  for (const auto& h : extra_headers) {
    // A header line never carries a line break (it would start another header).
    if (h.find_first_of("\r\n") != std::string::npos) {
      curl_slist_free_all(list);
      return Error(ErrorCode::kInvalidArgument, "header with a line break");
    }
    list = curl_slist_append(list, h.c_str());
  }
  if (post_body != nullptr) list = curl_slist_append(list, "Content-Type: application/json");
  if (list != nullptr) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  if (post_body != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post_body->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(post_body->size()));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_seconds);
  if (cancel != nullptr) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(cancel));
  }
  CURLcode rc = curl_easy_perform(curl);
  if (list != nullptr) curl_slist_free_all(list);
  if (rc == CURLE_ABORTED_BY_CALLBACK) return Error(ErrorCode::kIo, url + ": cancelled");
  if (rc != CURLE_OK && !response.too_large) {
    return Error(ErrorCode::kIo,
                 url + ": " + (error_buffer[0] != 0 ? error_buffer : curl_easy_strerror(rc)));
  }
  Response out;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  out.body.assign(response.bytes.begin(), response.bytes.end());
  out.retry_after = headers.retry_after;
  out.etag = headers.etag;
  return out;
}

Result<HttpFetcher::Response> HttpFetcher::PostJson(const std::string& url, const std::string& body,
                                                    const std::vector<std::string>& headers,
                                                    std::size_t max_response) {
  long timeout = options_.total_timeout_seconds > 0 ? options_.total_timeout_seconds : 60;
  return Request(url, &body, headers, timeout, max_response, nullptr);
}

Result<HttpFetcher::Response> HttpFetcher::Get(const std::string& url, long timeout_seconds,
                                               std::size_t max_response,
                                               const std::atomic<bool>* cancel,
                                               const std::vector<std::string>& headers) {
  return Request(url, nullptr, headers, timeout_seconds, max_response, cancel);
}

Result<std::vector<std::uint8_t>> HttpFetcher::Fetch(const std::string& url,
                                                     std::uint64_t max_length) {
  char error_buffer[CURL_ERROR_SIZE] = {0};
  CURL* curl = Prepare(url, error_buffer);
  if (curl == nullptr) return Error(ErrorCode::kInternal, "curl_easy_init failed");
  Body body;
  body.curl = curl;
  body.max_length = max_length;
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  HeaderSink headers;
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &headers);
  last_fetch_etag_.clear();
  CURLcode rc = curl_easy_perform(curl);
  if (body.too_large) {
    return Error(ErrorCode::kTooLarge,
                 url + ": more than the allowed " + std::to_string(max_length) + " bytes");
  }
  if (rc != CURLE_OK) {
    return Error(ErrorCode::kIo,
                 url + ": " + (error_buffer[0] != 0 ? error_buffer : curl_easy_strerror(rc)));
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (status == 403 || status == 404) {
    return Error(ErrorCode::kNotFound, url + ": HTTP " + std::to_string(status));
  }
  if (status < 200 || status >= 300) {
    return Error(ErrorCode::kIo, url + ": HTTP " + std::to_string(status));
  }
  last_fetch_etag_ = headers.etag;
  return std::move(body.bytes);
}

}  // namespace qp::net
