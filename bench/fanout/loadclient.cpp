// fanout-client: a native SSE load client (libuv). Opens N connections to one SSE endpoint,
// and for every event on every connection records the publish->receive latency (the publisher
// stamps "t": <unix microseconds> and "seq": <n> into the event) and checks that each
// connection sees seq 1, 2, 3, ... with nothing lost, duplicated or out of order.
//
//   fanout-client --port 8080 --path '/api/events/stream?channel=project:bench'
//                 --header 'Authorization: Bearer …' --connections 1000 --events 500 --timeout 60
// Prints one JSON object on stdout when every connection has its events or the time is up.
// After all connections are established it writes "ready" to the file given by --ready-file.
//
// --h2 --streams K: HTTP/2 with prior knowledge (h2c, nghttp2): each connection opens K streams
// on the endpoint, and every stream is a subscriber checked as above (connections x K in all).
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string path = "/";
  std::vector<std::string> headers;
  int connections = 100;
  long events = 100;      // per connection
  double timeout_s = 60;
  std::string ready_file;
  bool h2 = false;
  int streams = 1;        // per connection (--h2)
};

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Conn;

struct Run {
  Options opt;
  uv_loop_t* loop = nullptr;
  std::vector<std::unique_ptr<Conn>> conns;
  std::vector<int32_t> latencies_us;  // one sample per event per connection
  int subscribers = 0;    // connections (HTTP/1.1) or connections x streams (--h2)
  int connected = 0;
  int streaming = 0;
  int done = 0;
  int failed = 0;
  long lost = 0, duplicated = 0, out_of_order = 0, received = 0;
  int64_t first_event_us = 0, last_event_us = 0;
  bool ready_written = false;
  uv_timer_t deadline;
  std::string request;
};

// One subscriber: an HTTP/1.1 connection's response, or one HTTP/2 stream.
struct Sub {
  Run* run = nullptr;
  std::string buf;
  bool headers_done = false;
  long next_seq = 1;
  long got = 0;
  bool finished = false;
};

struct Conn {
  Run* run = nullptr;
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  Sub sub;                                   // HTTP/1.1
  nghttp2_session* session = nullptr;        // --h2
  std::vector<std::unique_ptr<Sub>> subs;    // --h2: one per stream
  std::unordered_map<int32_t, Sub*> by_stream;
  bool writing = false;
  bool closed = false;
};

void MaybeReady(Run* run) {
  if (run->ready_written || run->streaming < run->subscribers) return;
  run->ready_written = true;
  if (!run->opt.ready_file.empty()) std::ofstream(run->opt.ready_file) << "ready\n";
}

void Finish(Sub* c) {
  if (c->finished) return;
  c->finished = true;
  c->run->done++;
  if (c->run->done == c->run->subscribers) uv_stop(c->run->loop);
}

// Every subscriber of a connection that failed.
void FailConn(Conn* c) {
  if (!c->run->opt.h2) {
    if (!c->sub.finished) {
      c->run->failed++;
      Finish(&c->sub);
    }
    return;
  }
  for (auto& s : c->subs)
    if (!s->finished) {
      c->run->failed++;
      Finish(s.get());
    }
}

void CloseConn(Conn* c) {
  if (c->closed) return;
  c->closed = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), nullptr);
}

// Reads a number after `key` in `s` (e.g. "\"seq\":"), or -1.
long long NumberAfter(const std::string& s, size_t from, size_t to, const char* key) {
  size_t k = s.find(key, from);
  if (k == std::string::npos || k >= to) return -1;
  k += strlen(key);
  while (k < to && (s[k] == ' ')) k++;
  long long v = 0;
  bool any = false;
  while (k < to && s[k] >= '0' && s[k] <= '9') {
    v = v * 10 + (s[k] - '0');
    k++;
    any = true;
  }
  return any ? v : -1;
}

void OnFrame(Sub* c, size_t begin, size_t end) {
  // Only frames that carry a publisher stamp count; connected/heartbeat frames do not.
  const std::string& b = c->buf;
  long long seq = NumberAfter(b, begin, end, "\"seq\":");
  long long t = NumberAfter(b, begin, end, "\"t\":");
  if (seq < 0 || t < 0) return;
  Run* run = c->run;
  int64_t now = NowMicros();
  run->latencies_us.push_back(static_cast<int32_t>(std::min<int64_t>(now - t, INT32_MAX)));
  run->received++;
  if (run->first_event_us == 0) run->first_event_us = now;
  run->last_event_us = now;
  if (seq == c->next_seq) {
    c->next_seq++;
  } else if (seq > c->next_seq) {
    run->lost += seq - c->next_seq;
    c->next_seq = seq + 1;
  } else {
    // seq below what we expect: a duplicate if we saw it, else reordered.
    run->duplicated++;
  }
  c->got++;
  if (c->got >= run->opt.events) Finish(c);
}

void OnAlloc(uv_handle_t*, size_t suggested, uv_buf_t* out) {
  static char slab[256 * 1024];  // one shared read buffer: the callback consumes it at once
  (void)suggested;
  *out = uv_buf_init(slab, sizeof slab);
}

// Complete frames in a subscriber's buffer.
void ParseFrames(Sub* c) {
  size_t start = 0;
  for (;;) {
    size_t e = c->buf.find("\n\n", start);
    if (e == std::string::npos) break;
    OnFrame(c, start, e);
    start = e + 2;
  }
  c->buf.erase(0, start);
}

void H2Send(Conn* c);

void OnH2Write(uv_write_t* req, int status) {
  auto* c = static_cast<Conn*>(req->data);
  c->writing = false;
  if (status < 0) {
    FailConn(c);
    CloseConn(c);
    return;
  }
  H2Send(c);
}

// What nghttp2 has to send, in one write at a time.
void H2Send(Conn* c) {
  static std::unordered_map<Conn*, std::string> pending;
  if (c->writing || c->closed) return;
  std::string& out = pending[c];
  out.clear();
  for (;;) {
    const uint8_t* d = nullptr;
    ssize_t n = nghttp2_session_mem_send(c->session, &d);
    if (n <= 0) break;
    out.append(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
  }
  if (out.empty()) return;
  c->writing = true;
  c->write_req.data = c;
  uv_buf_t b = uv_buf_init(out.data(), static_cast<unsigned>(out.size()));
  uv_write(&c->write_req, reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1, OnH2Write);
}

int H2OnHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen, const uint8_t* value,
               size_t valuelen, uint8_t, void* ud) {
  auto* c = static_cast<Conn*>(ud);
  auto it = c->by_stream.find(f->hd.stream_id);
  if (it == c->by_stream.end() || namelen != 7 || memcmp(name, ":status", 7) != 0) return 0;
  Sub* s = it->second;
  if (valuelen == 3 && memcmp(value, "200", 3) == 0) {
    s->headers_done = true;
    c->run->streaming++;
    MaybeReady(c->run);
  } else {
    fprintf(stderr, "bad status: %.*s\n", static_cast<int>(valuelen), value);
    c->run->failed++;
    Finish(s);
  }
  return 0;
}

int H2OnData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len, void* ud) {
  auto* c = static_cast<Conn*>(ud);
  auto it = c->by_stream.find(id);
  if (it == c->by_stream.end()) return 0;
  it->second->buf.append(reinterpret_cast<const char*>(data), len);
  ParseFrames(it->second);
  return 0;
}

int H2OnClose(nghttp2_session*, int32_t id, uint32_t, void* ud) {
  auto* c = static_cast<Conn*>(ud);
  auto it = c->by_stream.find(id);
  if (it == c->by_stream.end()) return 0;
  if (!it->second->finished) {
    c->run->failed++;
    Finish(it->second);
  }
  c->by_stream.erase(it);
  return 0;
}

void H2Start(Conn* c) {
  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(cbs, H2OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, H2OnData);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, H2OnClose);
  nghttp2_session_client_new(&c->session, cbs, c);
  nghttp2_session_callbacks_del(cbs);
  // Large windows: the benchmark measures the server, not the client's flow control.
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16 << 20}};
  nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 1);
  nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, 1 << 30);
  const Options& o = c->run->opt;
  std::string authority = o.host + ":" + std::to_string(o.port);
  std::vector<std::pair<std::string, std::string>> h = {
      {":method", "GET"}, {":scheme", "http"}, {":authority", authority}, {":path", o.path},
      {"accept", "text/event-stream"}};
  for (const auto& line : o.headers) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon), value = line.substr(colon + 1);
    for (auto& ch : name) ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    h.emplace_back(name, value);
  }
  std::vector<nghttp2_nv> nv;
  for (auto& [k, v] : h)
    nv.push_back({reinterpret_cast<uint8_t*>(k.data()), reinterpret_cast<uint8_t*>(v.data()), k.size(), v.size(),
                  NGHTTP2_NV_FLAG_NONE});
  for (int i = 0; i < o.streams; i++) {
    auto s = std::make_unique<Sub>();
    s->run = c->run;
    int32_t id = nghttp2_submit_request(c->session, nullptr, nv.data(), nv.size(), nullptr, nullptr);
    if (id < 0) {
      c->run->failed++;
      Finish(s.get());
    } else {
      c->by_stream[id] = s.get();
    }
    c->subs.push_back(std::move(s));
  }
  H2Send(c);
}

void OnRead(uv_stream_t* stream, ssize_t n, const uv_buf_t* data) {
  auto* conn = static_cast<Conn*>(stream->data);
  if (n < 0) {
    FailConn(conn);
    CloseConn(conn);
    return;
  }
  if (conn->session) {
    if (nghttp2_session_mem_recv(conn->session, reinterpret_cast<const uint8_t*>(data->base),
                                 static_cast<size_t>(n)) < 0) {
      FailConn(conn);
      CloseConn(conn);
      return;
    }
    H2Send(conn);
    return;
  }
  Sub* c = &conn->sub;
  c->buf.append(data->base, static_cast<size_t>(n));
  if (!c->headers_done) {
    size_t h = c->buf.find("\r\n\r\n");
    if (h == std::string::npos) return;
    if (c->buf.compare(0, 12, "HTTP/1.1 200") != 0) {
      fprintf(stderr, "bad response: %.80s\n", c->buf.c_str());
      c->run->failed++;
      Finish(c);
      CloseConn(conn);
      return;
    }
    c->headers_done = true;
    c->buf.erase(0, h + 4);
    c->run->streaming++;
    MaybeReady(c->run);
  }
  // Frames end with a blank line. (Chunked transfer encoding is not used by SSE servers here;
  // chunk-size lines carry no "seq" and are skipped like any other line.)
  ParseFrames(c);
}

void OnWrite(uv_write_t* req, int status) {
  auto* c = static_cast<Conn*>(req->data);
  if (status < 0) {
    FailConn(c);
    CloseConn(c);
  }
}

void OnConnect(uv_connect_t* req, int status) {
  auto* c = static_cast<Conn*>(req->data);
  if (status < 0) {
    fprintf(stderr, "connect: %s\n", uv_err_name(status));
    FailConn(c);
    CloseConn(c);
    return;
  }
  c->run->connected++;
  if (c->run->opt.h2) {
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), OnAlloc, OnRead);
    H2Start(c);
    return;
  }
  uv_buf_t b = uv_buf_init(const_cast<char*>(c->run->request.data()), c->run->request.size());
  c->write_req.data = c;
  uv_write(&c->write_req, reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1, OnWrite);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), OnAlloc, OnRead);
}

void OnDeadline(uv_timer_t* t) { uv_stop(static_cast<Run*>(t->data)->loop); }

double Percentile(std::vector<int32_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * (v.size() - 1));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k] / 1000.0;
}

long RssKiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Run run;
  Options& o = run.opt;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host") o.host = v;
    else if (k == "--port") o.port = std::atoi(v.c_str());
    else if (k == "--path") o.path = v;
    else if (k == "--header") o.headers.push_back(v);
    else if (k == "--connections") o.connections = std::atoi(v.c_str());
    else if (k == "--events") o.events = std::atol(v.c_str());
    else if (k == "--timeout") o.timeout_s = std::atof(v.c_str());
    else if (k == "--ready-file") o.ready_file = v;
    else if (k == "--h2") o.h2 = v == "1";
    else if (k == "--streams") o.streams = std::atoi(v.c_str());
    else {
      fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (!o.h2) o.streams = 1;
  run.subscribers = o.connections * o.streams;
  run.request = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.host + "\r\nAccept: text/event-stream\r\n";
  for (auto& h : o.headers) run.request += h + "\r\n";
  run.request += "\r\n";
  run.latencies_us.reserve(static_cast<size_t>(run.subscribers) * std::min<long>(o.events, 100000));

  run.loop = uv_default_loop();
  sockaddr_in addr;
  uv_ip4_addr(o.host.c_str(), o.port, &addr);
  for (int i = 0; i < o.connections; i++) {
    auto c = std::make_unique<Conn>();
    c->run = &run;
    c->sub.run = &run;
    uv_tcp_init(run.loop, &c->tcp);
    c->tcp.data = c.get();
    c->connect_req.data = c.get();
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, reinterpret_cast<const sockaddr*>(&addr), OnConnect);
    if (rc < 0) {
      fprintf(stderr, "uv_tcp_connect: %s\n", uv_err_name(rc));
      return 1;
    }
    run.conns.push_back(std::move(c));
  }
  uv_timer_init(run.loop, &run.deadline);
  run.deadline.data = &run;
  uv_timer_start(&run.deadline, OnDeadline, static_cast<uint64_t>(o.timeout_s * 1000), 0);
  uv_run(run.loop, UV_RUN_DEFAULT);

  long missing = 0;
  for (auto& c : run.conns) {
    if (!o.h2 && c->sub.got < o.events && !c->sub.finished) missing += o.events - c->sub.got;
    for (auto& s : c->subs)
      if (s->got < o.events && !s->finished) missing += o.events - s->got;
  }
  double window_s = (run.last_event_us - run.first_event_us) / 1e6;
  std::vector<int32_t>& lat = run.latencies_us;
  printf("{\"connections\":%d,\"subscribers\":%d,\"streaming\":%d,\"failed\":%d,\"complete\":%d,\"received\":%ld,"
         "\"expected\":%ld,\"missing_at_end\":%ld,\"lost\":%ld,\"duplicated_or_reordered\":%ld,"
         "\"window_s\":%.3f,\"events_per_s\":%.0f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
         "\"p999_ms\":%.2f,\"max_ms\":%.2f,\"client_rss_kib\":%ld}\n",
         o.connections, run.subscribers, run.streaming, run.failed, run.done - run.failed, run.received,
         static_cast<long>(run.subscribers) * o.events, missing, run.lost, run.duplicated, window_s,
         window_s > 0 ? run.received / window_s : 0.0, Percentile(lat, 0.50), Percentile(lat, 0.99),
         Percentile(lat, 0.999), lat.empty() ? 0.0 : *std::max_element(lat.begin(), lat.end()) / 1000.0,
         RssKiB());
  for (auto& c : run.conns) {
    CloseConn(c.get());
    if (c->session) nghttp2_session_del(c->session);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&run.deadline), nullptr);
  uv_run(run.loop, UV_RUN_DEFAULT);
  return uv_loop_close(run.loop) == 0 ? 0 : 3;
}
