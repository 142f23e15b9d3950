#include "http/h2.hpp"

#include <cctype>
#include <algorithm>
#include <climits>
#include <cstring>

#include "core/guard.hpp"
#include "core/log.hpp"
#include "http/server.hpp"

namespace evstream::http {

const char kH2Preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

namespace {
constexpr size_t kMaxHeaderBytes = 64 * 1024;  // a request's header list (names + values + 32 each)
constexpr size_t kMaxHeaders = 100;            // as over HTTP/1.1
constexpr size_t kMaxTarget = 16 * 1024;       // as over HTTP/1.1 (414 above)
constexpr size_t kMaxPumpBytes = 256 * 1024;   // produced per write of the carrier
// Streams a connection may open: a burst of kStreamBurst, then kStreamRate a second (a token
// bucket). Past it (rapid reset, CVE-2023-44487, or any stream churn): GOAWAY
// ENHANCE_YOUR_CALM and the connection closes. Far above what a browser or a proxy opens.
constexpr double kStreamBurst = 1000;
constexpr double kStreamRate = 100;
// RST_STREAM frames from the client, also a token bucket (nghttp2 sends GOAWAY INTERNAL_ERROR
// past it). Twice the stream burst: a client that opens and resets streams runs out of stream
// tokens first and gets ENHANCE_YOUR_CALM however slowly the frames are processed (the stream
// bucket refills faster); this one stops resets of streams that were never opened.
constexpr uint64_t kResetBurst = 2000;
constexpr uint64_t kResetRate = 33;

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ConnectionSpecific(const std::string& name) {
  return name == "connection" || name == "keep-alive" || name == "transfer-encoding" || name == "upgrade" ||
         name == "proxy-connection";
}

H2Session* Self(void* ud) { return static_cast<H2Session*>(ud); }
}  // namespace

void ParseHead(const std::string& head, int* status, Headers* headers) {
  size_t eol = head.find("\r\n");
  std::string first = head.substr(0, eol);
  if (first.size() >= 12) {
    int s = 0;
    for (size_t i = 9; i < 12; i++) s = s * 10 + (std::isdigit(static_cast<unsigned char>(first[i])) ? first[i] - '0' : 0);
    if (s >= 100 && s <= 599) *status = s;
  }
  size_t pos = eol == std::string::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    headers->emplace_back(line.substr(0, colon), value);
  }
}

H2Session::H2Session(Connection* carrier) : carrier_(carrier) {}

H2Session::~H2Session() {
  if (session_) nghttp2_session_del(session_);
}

bool H2Session::Start(uint32_t max_concurrent_streams) {
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, OnFrameSend);
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return false;
  }
  // Our HPACK encoder's table stays at the default 4 KiB whatever the client allows: bounded
  // memory per connection.
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  nghttp2_option_set_stream_reset_rate_limit(opt, kResetBurst, kResetRate);
  tokens_ = kStreamBurst;
  int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  if (rv != 0) {
    session_ = nullptr;
    return false;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_concurrent_streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(kMaxHeaderBytes)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  return nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, sizeof settings / sizeof settings[0]) == 0;
}

bool H2Session::Receive(const char* data, size_t n) {
  busy_++;
  ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), n);
  busy_--;
  return rv >= 0;
}

void H2Session::Pump() {
  if (busy_ > 0) {
    pump_wanted_ = true;
    return;
  }
  if (!session_ || carrier_->closing() || carrier_->in_flight_) return;
  std::string out;
  busy_++;
  bool failed = false;
  while (out.size() < kMaxPumpBytes) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      failed = true;
      break;
    }
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  busy_--;
  pump_wanted_ = false;
  if (failed) {
    core::LogWarn("h2: session failed", {{"conn", carrier_->id_}});
    carrier_->Close();
    return;
  }
  if (carrier_->closing()) return;
  if (!out.empty())
    carrier_->Enqueue(std::make_shared<const std::string>(std::move(out)));  // OnWriteDone pumps again
  else
    carrier_->MaybeFinishH2();
}

bool H2Session::Finished() const {
  return !session_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_));
}

void H2Session::Goaway() {
  if (goaway_ || !session_) return;
  goaway_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  Pump();
}

ConnectionPtr H2Session::FindPtr(int32_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? nullptr : it->second;
}

Connection* H2Session::Find(int32_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? nullptr : it->second.get();
}

void H2Session::SubmitResponse(Connection* stream, int status, const Headers& headers, bool has_body) {
  std::vector<std::string> store;
  store.reserve(2 * headers.size() + 2);
  store.push_back(":status");
  store.push_back(std::to_string(status));
  for (const auto& [k, v] : headers) {
    std::string name = Lower(k);
    if (ConnectionSpecific(name)) continue;
    store.push_back(std::move(name));
    store.push_back(v);
  }
  std::vector<nghttp2_nv> nv;
  nv.reserve(store.size() / 2);
  for (size_t i = 0; i + 1 < store.size(); i += 2)
    nv.push_back({reinterpret_cast<uint8_t*>(store[i].data()), reinterpret_cast<uint8_t*>(store[i + 1].data()),
                  store[i].size(), store[i + 1].size(), NGHTTP2_NV_FLAG_NONE});
  nghttp2_data_provider prd{};
  prd.read_callback = OnDataRead;
  int rv = nghttp2_submit_response(session_, stream->stream_id_, nv.data(), nv.size(), has_body ? &prd : nullptr);
  if (rv != 0) {
    core::LogWarn("h2: cannot submit a response", {{"conn", carrier_->id_}, {"error", nghttp2_strerror(rv)}});
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream->stream_id_, NGHTTP2_INTERNAL_ERROR);
  }
  Pump();
}

void H2Session::Resume(int32_t stream_id) {
  if (session_) nghttp2_session_resume_data(session_, stream_id);
}

void H2Session::Reset(int32_t stream_id) {
  if (!session_ || carrier_->closing()) return;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
  Pump();
}

void H2Session::Forget(int32_t stream_id) {
  streams_.erase(stream_id);
  if (carrier_->closing()) return;
  if (streams_.empty() && !goaway_) carrier_->ArmTimer(carrier_->server_->options().idle_timeout_ms);
  Pump();
}

// A new request stream: a Connection of its own, sharing the carrier's address and limits.
int H2Session::OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  H2Session* self = Self(ud);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  if (self->terminated_) return 0;  // the session ends: nghttp2 ignores what still comes
  int rv = 0;
  core::Guard("h2 begin headers", [&] {
    Connection* c = self->carrier_;
    Server* server = c->server_;
    double now = static_cast<double>(uv_now(server->loop()));
    if (self->tokens_at_ == 0) self->tokens_at_ = now;
    self->tokens_ = std::min(kStreamBurst, self->tokens_ + (now - self->tokens_at_) * kStreamRate / 1000);
    self->tokens_at_ = now;
    if (self->tokens_ < 1) {
      core::LogWarn("h2: too many streams opened; closing the connection",
                    {{"conn", c->id_}, {"peer", c->peer_}});
      self->terminated_ = true;
      self->goaway_ = true;
      nghttp2_session_terminate_session(self->session_, NGHTTP2_ENHANCE_YOUR_CALM);
      return;  // the stream is not ours: its frames are ignored, the session ends after GOAWAY
    }
    self->tokens_ -= 1;
    // A stream counts like a connection: for --max-connections (past it: REFUSED_STREAM, the
    // client may retry) and for --max-connections-per-address (past it: 429, the connection
    // goes on). A trusted proxy's streams count under the client each names (Dispatch).
    if (!server->limits().TryOpen(server->opts_.max_connections)) {
      nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
      return;
    }
    auto s = std::make_shared<Connection>(server, server->next_id_++);
    s->proto_ = Connection::Protocol::H2Stream;
    s->carrier_ = c;
    s->stream_id_ = frame->hd.stream_id;
    s->peer_ = c->peer_;
    s->address_ = c->address_;
    s->client_address_ = c->address_;
    s->refuse_status_ = c->refuse_status_;
    s->got_bytes_ = true;
    if (!s->address_.empty() && !server->opts_.trusted_proxies.Contains(s->address_) && !s->CountAddress(s->address_))
      s->refuse_status_ = 429;
    s->ArmTimer(server->options().header_timeout_ms);
    self->streams_[frame->hd.stream_id] = std::move(s);
    server->metrics_->h2_streams++;  // (counted in the shared limits by TryOpen)
    if (!self->goaway_) c->StopTimer();
  }, [&] { rv = NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; });
  return rv;
}

int H2Session::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                        const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  Connection* s = Self(ud)->Find(frame->hd.stream_id);
  if (!s || s->state_ != Connection::State::ReadingRequest) return 0;
  int rv = 0;
  core::Guard("h2 header", [&] {
    if (s->h2_error_status_) return;
    Request& r = s->parser_.request();
    s->h2_header_bytes_ += namelen + valuelen + 32;
    if (s->h2_header_bytes_ > kMaxHeaderBytes || r.headers.size() >= kMaxHeaders) {
      s->h2_error_status_ = 431;
      return;
    }
    std::string n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":method") {
      r.method = std::move(v);
    } else if (n == ":path") {
      r.target = std::move(v);
    } else if (n == ":authority") {
      s->sniff_ = std::move(v);  // kept until the request is complete (becomes Host)
    } else if (!n.empty() && n[0] != ':') {
      r.headers.emplace_back(std::move(n), std::move(v));
    }
  }, [&] { rv = NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; });
  return rv;
}

int H2Session::OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                           void* ud) {
  H2Session* self = Self(ud);
  ConnectionPtr s = self->FindPtr(stream_id);  // held: Dispatch may erase it from the map
  if (!s || s->state_ != Connection::State::ReadingRequest) return 0;
  core::Guard("h2 data", [&] {
    Server* server = s->server_;
    Request& r = s->parser_.request();
    if (r.body.size() + len > server->options().max_body_bytes) {
      s->h2_error_status_ = 413;
    } else if (!server->TakePending(len)) {
      server->metrics_->shed++;
      s->h2_error_status_ = 503;
    } else {
      r.body.append(reinterpret_cast<const char*>(data), len);
      s->pending_ += len;
    }
    if (s->h2_error_status_) self->Dispatch(s.get());  // answer now; the rest of the body is ignored
  }, [&] { s->Fail(); });
  return 0;
}

int H2Session::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  H2Session* self = Self(ud);
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  ConnectionPtr s = self->FindPtr(frame->hd.stream_id);  // held: the handler may close and erase it
  if (!s || s->state_ != Connection::State::ReadingRequest) return 0;
  core::Guard("h2 request", [&] {
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
      self->Dispatch(s.get());
    } else if (frame->hd.type == NGHTTP2_HEADERS) {
      // Headers in, body to come: the body timeout runs (as over HTTP/1.1). A declared length
      // over the limit is refused at once.
      if (const std::string* cl = s->parser_.request().Header("content-length")) {
        unsigned long long n = 0;
        bool ok = !cl->empty() && cl->size() <= 19;
        for (char c : *cl) ok = ok && c >= '0' && c <= '9';
        if (ok) n = std::strtoull(cl->c_str(), nullptr, 10);
        if (ok && n > s->server_->options().max_body_bytes) s->h2_error_status_ = 413;
        if (s->h2_error_status_) {
          self->Dispatch(s.get());
          return;
        }
      }
      if (s->h2_error_status_) {
        self->Dispatch(s.get());
        return;
      }
      s->body_timer_ = true;
      s->ArmTimer(s->server_->options().body_timeout_ms);
    }
  }, [&] { s->Fail(); });
  return 0;
}

// A complete request (or one refused early): the same checks and handler as HTTP/1.1.
void H2Session::Dispatch(Connection* s) {
  if (s->state_ != Connection::State::ReadingRequest) return;
  ConnectionPtr keep = s->shared_from_this();
  s->StopTimer();
  s->state_ = Connection::State::Handling;
  s->ReleasePending();
  s->body_timer_ = false;
  s->server_->metrics_->http_requests++;
  Request& r = s->parser_.request();
  r.keep_alive = true;
  if (s->h2_error_status_) {
    int st = s->h2_error_status_;
    Response resp = JsonError(st, st == 413 ? "body_too_large" : st == 503 ? "busy" : "bad_request",
                              st == 503 ? "the server holds too many incoming requests; retry later" : StatusText(st));
    if (st == 503) resp.headers.emplace_back("Retry-After", s->RetryAfter());
    s->Respond(resp);
    return;
  }
  if (r.target.size() > kMaxTarget) {
    s->Respond(JsonError(414, "bad_request", StatusText(414)));
    return;
  }
  http_parser_url u;
  http_parser_url_init(&u);
  if (r.method.empty() || r.target.empty() || r.target[0] != '/' ||
      http_parser_parse_url(r.target.data(), r.target.size(), 0, &u) != 0) {
    s->Respond(JsonError(400, "bad_request", StatusText(400)));
    return;
  }
  if (u.field_set & (1 << UF_PATH))
    r.path = PercentDecode(std::string_view(r.target).substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len), false);
  if (u.field_set & (1 << UF_QUERY)) r.query = r.target.substr(u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
  if (!s->sniff_.empty() && !r.Header("host")) r.headers.emplace_back("host", s->sniff_);
  s->sniff_.clear();
  s->Dispatch();
}

// Our answer ended its stream while the client was still sending (an early 413/431/503/408,
// or a handler that answers before the body is in): RST_STREAM NO_ERROR tells it to stop
// (RFC 9113 8.1) and closes the stream now, rather than holding it half open.
int H2Session::OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* ud) {
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  if (!Self(ud)->Find(frame->hd.stream_id)) return 0;
  if (nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0)
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  return 0;
}

int H2Session::OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* ud) {
  H2Session* self = Self(ud);
  auto it = self->streams_.find(stream_id);
  if (it == self->streams_.end()) return 0;
  ConnectionPtr s = it->second;
  core::Guard("h2 stream close", [&] {
    s->h2_closed_ = true;
    s->Close();
  });
  return 0;
}

// The body of a response or an SSE stream: what its queue holds, as much as flow control lets
// through now. Nothing queued: deferred until Flush() resumes it. Closing and drained: END_STREAM.
ssize_t H2Session::OnDataRead(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                              uint32_t* data_flags, nghttp2_data_source*, void* ud) {
  Connection* s = Self(ud)->Find(stream_id);
  if (!s || s->closing()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t n = 0;
  bool held = s->hold_ && !s->release_ && !s->close_after_flush_;
  while (!held && n < length && !s->queue_.empty()) {
    const std::string& f = *s->queue_.front();
    size_t take = std::min(length - n, f.size() - s->sent_offset_);
    std::memcpy(buf + n, f.data() + s->sent_offset_, take);
    n += take;
    s->sent_offset_ += take;
    if (s->sent_offset_ == f.size()) {
      s->queued_bytes_ -= f.size();
      s->queue_.pop_front();
      s->sent_offset_ = 0;
    }
  }
  // A closing stream that moves on gets its drain time again; one that does not is reset.
  if (n > 0 && s->close_after_flush_) s->ArmTimer(s->server_->options().drain_timeout_ms);
  if (s->queue_.empty()) {
    s->release_ = false;
    if (s->close_after_flush_) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    }
  }
  if (n == 0) {
    s->deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

}  // namespace evstream::http
