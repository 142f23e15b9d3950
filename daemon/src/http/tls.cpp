#include "http/tls.hpp"

#include <openssl/err.h>

#include <cstring>

namespace evstream::http {
namespace {

std::string LastSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// ALPN: h2 when the client offers it, else http/1.1; a client offering neither is refused
// nothing (no ALPN answer: HTTP/1.1 as before ALPN existed).
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  static const unsigned char kH2[] = {'h', '2'};
  static const unsigned char kH1[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
  for (const unsigned char* want : {kH2, kH1}) {
    size_t want_len = want == kH2 ? sizeof kH2 : sizeof kH1;
    for (unsigned int i = 0; i < inlen;) {
      unsigned int len = in[i];
      if (i + 1 + len > inlen) break;
      if (len == want_len && std::memcmp(in + i + 1, want, len) == 0) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::shared_ptr<TlsContext> TlsContext::Load(const std::string& cert_file, const std::string& key_file,
                                             std::string* error) {
  auto ctx = std::shared_ptr<TlsContext>(new TlsContext);
  ERR_clear_error();
  ctx->ctx_ = SSL_CTX_new(TLS_server_method());
  if (!ctx->ctx_) {
    *error = "SSL_CTX_new: " + LastSslError();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx->ctx_, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx->ctx_, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx->ctx_, cert_file.c_str()) != 1) {
    *error = "--tls-cert " + cert_file + ": " + LastSslError();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx->ctx_, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    *error = "--tls-key " + key_file + ": " + LastSslError();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx->ctx_) != 1) {
    *error = "--tls-key " + key_file + " does not match --tls-cert " + cert_file;
    ERR_clear_error();
    return nullptr;
  }
  SSL_CTX_set_alpn_select_cb(ctx->ctx_, SelectAlpn, nullptr);
  return ctx;
}

TlsContext::~TlsContext() {
  if (ctx_) SSL_CTX_free(ctx_);
}

TlsConn::TlsConn(const std::shared_ptr<TlsContext>& ctx) {
  ssl_ = SSL_new(ctx->get());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (!ssl_ || !rbio_ || !wbio_) {
    if (rbio_) BIO_free(rbio_);
    if (wbio_) BIO_free(wbio_);
    rbio_ = wbio_ = nullptr;
    failed_ = true;
    return;
  }
  BIO_set_mem_eof_return(rbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_);
  SSL_set_accept_state(ssl_);
}

TlsConn::~TlsConn() {
  if (ssl_) SSL_free(ssl_);
}

bool TlsConn::Receive(const char* data, size_t n, std::string* plain) {
  if (failed_) return false;
  ERR_clear_error();
  while (n > 0) {
    int w = BIO_write(rbio_, data, static_cast<int>(n > (1u << 30) ? (1u << 30) : n));
    if (w <= 0) return !(failed_ = true);
    data += w;
    n -= static_cast<size_t>(w);
  }
  if (!handshake_done_) {
    int rc = SSL_do_handshake(ssl_);
    if (rc != 1) {
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return true;
      ERR_clear_error();
      return !(failed_ = true);
    }
    handshake_done_ = true;
  }
  char buf[16 * 1024];
  for (;;) {
    int r = SSL_read(ssl_, buf, sizeof buf);
    if (r > 0) {
      plain->append(buf, static_cast<size_t>(r));
      continue;
    }
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return true;
    ERR_clear_error();
    // close_notify from the client, or a bad record: either way nothing more will come.
    failed_ = true;
    return err == SSL_ERROR_ZERO_RETURN;
  }
}

std::string TlsConn::Alpn() const {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  if (ssl_) SSL_get0_alpn_selected(ssl_, &p, &len);
  return p ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
}

bool TlsConn::Encrypt(const char* data, size_t n) {
  if (failed_ || !handshake_done_) return false;
  ERR_clear_error();
  while (n > 0) {
    int chunk = static_cast<int>(n > (1u << 30) ? (1u << 30) : n);
    int w = SSL_write(ssl_, data, chunk);
    if (w <= 0) {
      ERR_clear_error();
      return !(failed_ = true);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void TlsConn::CloseNotify() {
  if (!ssl_ || !handshake_done_) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

size_t TlsConn::PendingOut() const { return wbio_ ? BIO_ctrl_pending(wbio_) : 0; }

std::string TlsConn::TakeOut() {
  std::string out;
  size_t n = PendingOut();
  if (n == 0) return out;
  out.resize(n);
  int r = BIO_read(wbio_, out.data(), static_cast<int>(n));
  out.resize(r > 0 ? static_cast<size_t>(r) : 0);
  return out;
}

}  // namespace evstream::http
