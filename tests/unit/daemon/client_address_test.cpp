// The client's address behind a trusted proxy: X-Forwarded-For / X-Real-IP count only from a
// configured proxy, are walked from the right past trusted hops, and garbage never becomes an
// address.
#include <gtest/gtest.h>

#include "core/config.hpp"
#include "http/client_address.hpp"

using evstream::http::ClientAddress;
using evstream::http::ProxyList;
using evstream::http::Request;

namespace {
Request With(std::vector<std::pair<std::string, std::string>> headers) {
  Request r;
  r.headers = std::move(headers);
  return r;
}
ProxyList Proxies(std::initializer_list<const char*> entries) {
  ProxyList l;
  std::string err;
  for (const char* e : entries) EXPECT_TRUE(l.Add(e, &err)) << e << ": " << err;
  return l;
}
}  // namespace

TEST(ClientAddress, forged_headers_from_a_peer_that_is_not_a_trusted_proxy_are_ignored) {
  auto req = With({{"x-forwarded-for", "10.9.9.9"}, {"x-real-ip", "10.8.8.8"}});
  EXPECT_EQ(ClientAddress("127.0.0.2", Proxies({"127.0.0.1"}), req), "127.0.0.2");
  EXPECT_EQ(ClientAddress("127.0.0.2", ProxyList(), req), "127.0.0.2") << "no proxy configured";
}

TEST(ClientAddress, a_trusted_proxy_names_the_client) {
  auto trusted = Proxies({"127.0.0.1"});
  EXPECT_EQ(ClientAddress("127.0.0.1", trusted, With({{"x-forwarded-for", "203.0.113.7"}})), "203.0.113.7");
  EXPECT_EQ(ClientAddress("127.0.0.1", trusted, With({{"x-real-ip", " 2001:db8::1 "}})), "2001:db8::1");
  EXPECT_EQ(ClientAddress("127.0.0.1", trusted, With({})), "127.0.0.1") << "no header: the proxy itself";
}

TEST(ClientAddress, the_chain_is_walked_from_the_right_past_trusted_hops_only) {
  auto trusted = Proxies({"127.0.0.1", "10.0.0.0/8"});
  // The client prepended a forged hop; the proxies appended the real ones.
  auto req = With({{"x-forwarded-for", "6.6.6.6, 198.51.100.4"}, {"x-forwarded-for", "10.1.2.3"}});
  EXPECT_EQ(ClientAddress("127.0.0.1", trusted, req), "198.51.100.4");
  EXPECT_EQ(ClientAddress("127.0.0.1", trusted, With({{"x-forwarded-for", "10.0.0.5, 10.0.0.6"}})), "10.0.0.5");
}

TEST(ClientAddress, garbage_never_becomes_an_address) {
  auto trusted = Proxies({"127.0.0.1"});
  for (const char* bad : {"", "unknown", "1.2.3.4:80", "[::1]", "1.2.3.4.5", "999.1.1.1", "a, b"}) {
    EXPECT_EQ(ClientAddress("127.0.0.1", trusted, With({{"x-forwarded-for", bad}})), "127.0.0.1") << bad;
    EXPECT_EQ(ClientAddress("127.0.0.1", trusted, With({{"x-real-ip", bad}})), "127.0.0.1") << bad;
  }
}

TEST(ProxyList, addresses_and_blocks) {
  auto l = Proxies({"192.168.0.0/16", "::1", "fd00::/8", "10.1.2.3", "0.0.0.0/0"});
  EXPECT_TRUE(l.Contains("192.168.4.5"));
  EXPECT_TRUE(l.Contains("::1"));
  EXPECT_TRUE(l.Contains("fd12::9"));
  EXPECT_FALSE(l.Contains("fe80::1"));
  EXPECT_TRUE(l.Contains("8.8.8.8")) << "0.0.0.0/0";
  auto narrow = Proxies({"10.0.0.0/9"});
  EXPECT_TRUE(narrow.Contains("10.127.0.1"));
  EXPECT_FALSE(narrow.Contains("10.128.0.1"));
  EXPECT_FALSE(narrow.Contains("not-an-ip"));
  ProxyList bad;
  std::string err;
  for (const char* e : {"", "localhost", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "1.2.3.4:80"}) {
    EXPECT_FALSE(bad.Add(e, &err)) << e;
    EXPECT_FALSE(err.empty());
  }
}

TEST(ClientAddress, trusted_proxy_flag_is_repeatable_and_checked) {
  evstream::core::Config cfg;
  std::string err;
  const char* argv[] = {"evstreamd", "--trusted-proxy", "127.0.0.1", "--trusted-proxy=10.0.0.0/8,::1"};
  auto env = [](const char*) -> const char* { return nullptr; };
  ASSERT_EQ(evstream::core::ParseConfig(4, argv, &cfg, &err, env), evstream::core::ParseOutcome::Run) << err;
  EXPECT_EQ(cfg.trusted_proxies, (std::vector<std::string>{"127.0.0.1", "10.0.0.0/8", "::1"}));
  const char* bad[] = {"evstreamd", "--trusted-proxy", "proxy.local"};
  EXPECT_EQ(evstream::core::ParseConfig(3, bad, &cfg, &err, env), evstream::core::ParseOutcome::Error);
  EXPECT_NE(err.find("--trusted-proxy"), std::string::npos) << err;
}
