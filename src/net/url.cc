#include "net/url.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>

#include "core/ascii.h"

namespace qp::net {
namespace {

constexpr std::size_t kMaxUrlBytes = 8192;

Error Bad(std::string_view text, const std::string& why) {
  // The URL may be attacker-influenced (a mirror list, a config): quote a bounded prefix.
  std::string shown(text.substr(0, 200));
  return Error(ErrorCode::kInvalidArgument, "URL \"" + shown + "\": " + why);
}

bool IsDnsName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return host.front() != '.' && host.front() != '-';
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// True when `host` is named by the no_proxy list: "*", the host itself, or a domain it is
// under (".example.com" and "example.com" both cover "a.example.com").
bool Bypassed(const std::string& host, std::string_view no_proxy) {
  while (!no_proxy.empty()) {
    std::size_t comma = no_proxy.find(',');
    std::string_view entry = TrimBlanks(no_proxy.substr(0, comma));
    no_proxy = comma == std::string_view::npos ? std::string_view() : no_proxy.substr(comma + 1);
    if (entry == "*") return true;
    if (entry.starts_with('[')) {  // [v6]:port
      std::size_t close = entry.find(']');
      entry = close == std::string_view::npos ? entry : entry.substr(1, close - 1);
    } else if (std::count(entry.begin(), entry.end(), ':') == 1) {
      entry = entry.substr(0, entry.find(':'));  // host:port: the port is not compared
    }
    while (entry.starts_with('.')) entry.remove_prefix(1);
    if (entry.empty()) continue;
    std::string name = Lower(entry);
    if (host == name) return true;
    if (host.size() > name.size() && host.ends_with(name) &&
        host[host.size() - name.size() - 1] == '.') {
      return true;
    }
  }
  return false;
}

}  // namespace

bool IsIpAddress(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string Url::Authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

std::string Url::Origin() const { return (https ? "https://" : "http://") + Authority(); }

Result<Url> ParseUrl(std::string_view text, bool allow_userinfo) {
  if (text.size() > kMaxUrlBytes) return Bad(text, "longer than 8 KiB");
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return Bad(text, "control character or space");
  }
  Url url;
  std::size_t sep = text.find("://");
  if (sep == std::string_view::npos) return Bad(text, "not an absolute URL");
  std::string scheme = Lower(text.substr(0, sep));
  if (scheme == "https") {
    url.https = true;
  } else if (scheme != "http") {
    return Bad(text, "scheme \"" + scheme + "\" (only http and https are spoken)");
  }
  std::string_view rest = text.substr(sep + 3);
  if (rest.find('#') != std::string_view::npos) return Bad(text, "a fragment");
  std::size_t path_at = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_at);
  url.target = path_at == std::string_view::npos ? "/" : std::string(rest.substr(path_at));
  if (url.target.front() == '?') url.target.insert(0, "/");
  if (std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    if (!allow_userinfo) return Bad(text, "credentials in the URL");
    url.userinfo = std::string(authority.substr(0, at));
    authority = authority.substr(at + 1);
  }
  std::string_view host_part = authority, port_part;
  if (authority.starts_with('[')) {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return Bad(text, "unclosed [ in the host");
    host_part = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Bad(text, "junk after the IPv6 address");
      port_part = after.substr(1);
    }
    url.host = Lower(host_part);
    unsigned char buf[16];
    if (inet_pton(AF_INET6, url.host.c_str(), buf) != 1) return Bad(text, "bad IPv6 address");
  } else {
    std::size_t colon = authority.find(':');
    if (colon != std::string_view::npos) {
      host_part = authority.substr(0, colon);
      port_part = authority.substr(colon + 1);
    }
    url.host = Lower(host_part);
    if (!IsDnsName(url.host)) return Bad(text, "bad host name");
  }
  if (!port_part.empty()) {
    if (port_part.size() > 5) return Bad(text, "bad port");
    unsigned value = 0;
    for (char c : port_part) {
      if (c < '0' || c > '9') return Bad(text, "bad port");
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) return Bad(text, "port out of range");
    url.port = static_cast<std::uint16_t>(value);
    url.port_given = true;
  } else if (authority.ends_with(':')) {
    return Bad(text, "empty port");
  } else {
    url.port = url.https ? 443 : 80;
  }
  return url;
}

ProxySettings ProxySettings::FromEnvironment() {
  auto get = [](const char* name) -> std::string {
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read once, at start
    return v != nullptr ? v : "";
  };
  ProxySettings s;
  // HTTP_PROXY in upper case is not read: a CGI program gets it from a request's "Proxy:"
  // header (httpoxy); curl ignores it for the same reason.
  s.http_proxy = get("http_proxy");
  s.https_proxy = get("https_proxy");
  if (s.https_proxy.empty()) s.https_proxy = get("HTTPS_PROXY");
  s.no_proxy = get("no_proxy");
  if (s.no_proxy.empty()) s.no_proxy = get("NO_PROXY");
  return s;
}

Result<std::optional<Url>> ProxyFor(const Url& url, const ProxySettings& settings) {
  const std::string& proxy = url.https ? settings.https_proxy : settings.http_proxy;
  if (proxy.empty() || Bypassed(url.host, settings.no_proxy)) return std::optional<Url>();
  std::string text = proxy.find("://") == std::string::npos ? "http://" + proxy : proxy;
  auto parsed = ParseUrl(text, /*allow_userinfo=*/true);
  if (!parsed.ok()) {
    return Error(ErrorCode::kInvalidArgument, "proxy: " + parsed.error().message());
  }
  if (parsed->https) {
    return Error(ErrorCode::kUnsupported, "proxy: only http:// proxies are supported");
  }
  if (!parsed->port_given) parsed->port = 1080;  // curl's default for a proxy
  return std::optional<Url>(std::move(*parsed));
}

}  // namespace qp::net
