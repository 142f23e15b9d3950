// TLS for the HTTP server with OpenSSL memory BIOs: the socket stays a plain libuv stream; bytes
// read from it go into the SSL object's read BIO and come out as plaintext, plaintext to send
// goes in and ciphertext comes out of its write BIO. ALPN chooses h2 or http/1.1.
#pragma once
#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace evstream::http {

// One certificate and key; replaced whole on reload (connections keep the context they began
// with: SSL_new holds a reference).
class TlsContext {
 public:
  // Reads the PEM files and checks that the key matches the certificate; nullptr and *error
  // when it cannot.
  static std::shared_ptr<TlsContext> Load(const std::string& cert_file, const std::string& key_file,
                                          std::string* error);
  ~TlsContext();
  SSL_CTX* get() const { return ctx_; }

 private:
  SSL_CTX* ctx_ = nullptr;
};

class TlsConn {
 public:
  explicit TlsConn(const std::shared_ptr<TlsContext>& ctx);
  ~TlsConn();
  TlsConn(const TlsConn&) = delete;
  TlsConn& operator=(const TlsConn&) = delete;

  // Ciphertext in; the plaintext it completes is appended to *plain. False on a fatal error
  // (bad handshake, bad record): the connection closes.
  bool Receive(const char* data, size_t n, std::string* plain);
  bool HandshakeDone() const { return handshake_done_; }
  // The protocol ALPN chose ("h2", "http/1.1") or "" when the client offered none.
  std::string Alpn() const;
  // Plaintext to send (after the handshake); its ciphertext waits in the write BIO.
  bool Encrypt(const char* data, size_t n);
  // Queues a close_notify alert.
  void CloseNotify();
  size_t PendingOut() const;
  std::string TakeOut();

 private:
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // owned by ssl_
  BIO* wbio_ = nullptr;  // owned by ssl_
  bool handshake_done_ = false;
  bool failed_ = false;
};

}  // namespace evstream::http
