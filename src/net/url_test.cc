#include "net/url.h"

#include <gtest/gtest.h>

namespace qp::net {
namespace {

TEST(UrlTest, ParsesSchemesPortsAndTargets) {
  auto a = ParseUrl("https://Updates.Example.com/repo/metadata/timestamp.json?x=1");
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_TRUE(a->https);
  EXPECT_EQ(a->host, "updates.example.com");
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->target, "/repo/metadata/timestamp.json?x=1");
  auto b = ParseUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->port, 8080);
  EXPECT_EQ(b->target, "/");
  auto c = ParseUrl("http://[::1]:9/v1/watch");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->Authority(), "[::1]:9");
  EXPECT_EQ(c->Origin(), "http://[::1]:9");
  EXPECT_EQ(ParseUrl("http://h?q=1")->target, "/?q=1");
}

TEST(UrlTest, RefusesWhatARequestMustNotCarry) {
  for (const char* bad :
       {"ftp://h/x", "file:///etc/passwd", "h/x", "http://user:pw@h/x", "http://h/x#frag",
        "http://h/a b", "http://h/\r\nX: y", "http://h:0/", "http://h:65536/", "http://h:/x",
        "http://h:8a/", "http://[::1/", "http://[zz]/", "http://bad_host!/", "http:///x"}) {
    EXPECT_FALSE(ParseUrl(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseUrl("http://h/" + std::string(9000, 'a')).ok());
}

TEST(UrlTest, ChoosesTheProxyByScheme) {
  ProxySettings s;
  s.https_proxy = "http://proxy.corp:3128";
  s.http_proxy = "proxy.corp";
  auto https = ProxyFor(*ParseUrl("https://updates.example.com/x"), s);
  ASSERT_TRUE(https.ok());
  ASSERT_TRUE(https->has_value());
  EXPECT_EQ((*https)->Authority(), "proxy.corp:3128");
  auto http = ProxyFor(*ParseUrl("http://updates.example.com/x"), s);
  ASSERT_TRUE(http.ok() && http->has_value());
  EXPECT_EQ((*http)->port, 1080);  // no port: curl's default for a proxy
  s.http_proxy.clear();
  EXPECT_FALSE(ProxyFor(*ParseUrl("http://updates.example.com/x"), s)->has_value());
}

TEST(UrlTest, NoProxyNamesHostsAndDomains) {
  ProxySettings s;
  s.https_proxy = "http://p:1";
  s.no_proxy = "localhost, .internal.example ,10.0.0.1:443";
  auto direct = [&](const char* url) { return !ProxyFor(*ParseUrl(url), s)->has_value(); };
  EXPECT_TRUE(direct("https://localhost/x"));
  EXPECT_TRUE(direct("https://a.internal.example/x"));
  EXPECT_TRUE(direct("https://internal.example/x"));
  EXPECT_TRUE(direct("https://10.0.0.1/x"));
  EXPECT_FALSE(direct("https://notinternal.example/x"));
  EXPECT_FALSE(direct("https://updates.example.com/x"));
  s.no_proxy = "*";
  EXPECT_TRUE(direct("https://updates.example.com/x"));
}

TEST(UrlTest, RefusesAProxyItCannotSpeak) {
  ProxySettings s;
  s.https_proxy = "https://p:443";
  auto r = ProxyFor(*ParseUrl("https://h/x"), s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnsupported);
  s.https_proxy = "http://p:99999";
  EXPECT_FALSE(ProxyFor(*ParseUrl("https://h/x"), s).ok());
  s.https_proxy = "http://user:secret@p:3128";
  auto with_credentials = ProxyFor(*ParseUrl("https://h/x"), s);
  ASSERT_TRUE(with_credentials.ok() && with_credentials->has_value());
  EXPECT_EQ((*with_credentials)->userinfo, "user:secret");
}

}  // namespace
}  // namespace qp::net
