// Fuzzes the HTTP request parsing the server relies on (Beast's parser with the server's
// limits) and the repository path handling and range parsing behind it.
#include <boost/beast/http.hpp>

#include "server/repository_files.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace http = boost::beast::http;
  http::request_parser<http::string_body> parser;
  parser.header_limit(8192);
  parser.body_limit(256 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(data, size), ec);
  static qp::server::RepositoryFiles files("/nonexistent-quietpatch-repo");
  if (!ec && parser.is_header_done()) {
    const auto& req = parser.get();
    std::string_view target(req.target().data(), req.target().size());
    if (target.rfind("/repo/", 0) == 0) {
      auto range = req[http::field::range];
      auto etag = req[http::field::if_none_match];
      (void)files.Serve(target.substr(6), std::string_view(range.data(), range.size()),
                        std::string_view(etag.data(), etag.size()));
    }
  }
  std::string decoded;
  (void)qp::server::PercentDecode(std::string_view(reinterpret_cast<const char*>(data), size),
                                  &decoded);
  return 0;
}
