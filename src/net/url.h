// Absolute http(s) URLs as the agent's HTTP client needs them, and the proxy a URL goes
// through (https_proxy, http_proxy and no_proxy, as curl and most tools read them).
// Everything here is pure: the environment is read only by ProxySettings::FromEnvironment.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace qp::net {

struct Url {
  bool https = false;
  std::string host;        // lower case; an IPv6 address without its brackets
  std::uint16_t port = 0;  // 80 or 443 unless the URL names one
  bool port_given = false;
  std::string target;    // origin-form, "/path?query", never empty
  std::string userinfo;  // "user:password", only ever in a proxy's URL

  // "host:port", an IPv6 address in brackets (the Host header, a CONNECT target).
  std::string Authority() const;
  // "https://host:port": the connection a request needs, without the target.
  std::string Origin() const;
};

// Parses an absolute http:// or https:// URL. Errors (kInvalidArgument) for any other
// scheme, a URL over 8 KiB, control characters or spaces, a fragment, a port outside
// 1..65535, a host that is neither a DNS name nor an IP address, and credentials in the
// URL (a request never carries them) unless `allow_userinfo` (a proxy's URL).
Result<Url> ParseUrl(std::string_view text, bool allow_userinfo = false);

// True for an IPv4 or IPv6 address (TLS then checks the certificate's IP names, and no
// SNI is sent).
bool IsIpAddress(const std::string& host);

struct ProxySettings {
  std::string http_proxy;   // for http:// URLs: http_proxy (lower case only, as curl)
  std::string https_proxy;  // for https:// URLs: https_proxy or HTTPS_PROXY
  std::string no_proxy;     // no_proxy or NO_PROXY: "*" or host/domain names, commas between
  static ProxySettings FromEnvironment();
};

// The proxy that `url` goes through, or nullopt for a direct connection. A proxy is given
// as "http://[user:password@]host[:port]" or "host[:port]" (port 1080 by default, as curl).
// Errors: a proxy URL that does not parse, or one that is not http:// (TLS to the proxy
// itself is not spoken).
Result<std::optional<Url>> ProxyFor(const Url& url, const ProxySettings& settings);

}  // namespace qp::net
