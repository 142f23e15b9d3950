// The pure parts of the HTTP/2 and TLS layer: the HTTP/1.1 head an SSE stream sends, read back
// as an HTTP/2 status and headers; TLS contexts refuse missing or mismatched files.
#include <gtest/gtest.h>

#include "core/config.hpp"
#include "http/h2.hpp"
#include "http/tls.hpp"

namespace evstream::http {
namespace {

TEST(H2, parse_head_reads_status_and_headers) {
  int status = 0;
  Headers h;
  ParseHead("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nX-Accel-Buffering: no\r\n"
            "Access-Control-Allow-Origin: http://a.example\r\n\r\n",
            &status, &h);
  EXPECT_EQ(status, 200);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].first, "Content-Type");
  EXPECT_EQ(h[0].second, "text/event-stream; charset=utf-8");
  EXPECT_EQ(h[2].second, "http://a.example");
}

TEST(H2, parse_head_keeps_default_status_on_garbage) {
  int status = 200;
  Headers h;
  ParseHead("garbage\r\nno colon here\r\n\r\n", &status, &h);
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(h.empty());
}

TEST(H2, preface_is_the_rfc_9113_client_magic) {
  EXPECT_EQ(std::string(kH2Preface, kH2PrefaceLen), std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
}

TEST(Tls, missing_files_refuse_to_load) {
  std::string error;
  EXPECT_EQ(TlsContext::Load("/nonexistent/cert.pem", "/nonexistent/key.pem", &error), nullptr);
  EXPECT_NE(error.find("--tls-cert"), std::string::npos) << error;
}

TEST(Config, tls_flags_and_h2_streams) {
  const char* argv[] = {"evstreamd", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--h2-max-concurrent-streams", "7"};
  core::Config cfg;
  std::string error;
  ASSERT_EQ(core::ParseConfig(7, argv, &cfg, &error, [](const char*) -> const char* { return nullptr; }),
            core::ParseOutcome::Run)
      << error;
  EXPECT_EQ(cfg.tls_cert_file, "c.pem");
  EXPECT_EQ(cfg.tls_key_file, "k.pem");
  EXPECT_EQ(cfg.h2_max_concurrent_streams, 7);
  const char* bad[] = {"evstreamd", "--h2-max-concurrent-streams", "0"};
  EXPECT_EQ(core::ParseConfig(3, bad, &cfg, &error, [](const char*) -> const char* { return nullptr; }),
            core::ParseOutcome::Error);
  core::Config half;
  half.tls_cert_file = "c.pem";
  EXPECT_FALSE(core::LoadFiles(&half, &error));
  EXPECT_NE(error.find("--tls-key"), std::string::npos) << error;
}

}  // namespace
}  // namespace evstream::http
