// fanout-client: a native SSE load client (libuv). Opens N connections to one SSE endpoint,
// and for every event on every connection records the publish->receive latency (the publisher
// stamps "t": <unix microseconds> and "seq": <n> into the event) and checks that each
// connection sees seq 1, 2, 3, ... with nothing lost, duplicated or out of order.
//
//   fanout-client --port 8080 --path '/api/events/stream?channel=project:bench'
//                 --header 'Authorization: Bearer …' --connections 1000 --events 500 --timeout 60
// Prints one JSON object on stdout when every connection has its events or the time is up.
// After all connections are established it writes "ready" to the file given by --ready-file.
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
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

struct Conn {
  Run* run = nullptr;
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  std::string buf;
  bool headers_done = false;
  long next_seq = 1;
  long got = 0;
  bool finished = false;
  bool closed = false;
};

void MaybeReady(Run* run) {
  if (run->ready_written || run->streaming < run->opt.connections) return;
  run->ready_written = true;
  if (!run->opt.ready_file.empty()) std::ofstream(run->opt.ready_file) << "ready\n";
}

void Finish(Conn* c) {
  if (c->finished) return;
  c->finished = true;
  c->run->done++;
  if (c->run->done == c->run->opt.connections) uv_stop(c->run->loop);
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

void OnFrame(Conn* c, size_t begin, size_t end) {
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

void OnRead(uv_stream_t* stream, ssize_t n, const uv_buf_t* data) {
  auto* c = static_cast<Conn*>(stream->data);
  if (n < 0) {
    if (!c->finished) {
      c->run->failed++;
      Finish(c);
    }
    CloseConn(c);
    return;
  }
  c->buf.append(data->base, static_cast<size_t>(n));
  if (!c->headers_done) {
    size_t h = c->buf.find("\r\n\r\n");
    if (h == std::string::npos) return;
    if (c->buf.compare(0, 12, "HTTP/1.1 200") != 0) {
      fprintf(stderr, "bad response: %.80s\n", c->buf.c_str());
      c->run->failed++;
      Finish(c);
      CloseConn(c);
      return;
    }
    c->headers_done = true;
    c->buf.erase(0, h + 4);
    c->run->streaming++;
    MaybeReady(c->run);
  }
  // Frames end with a blank line. (Chunked transfer encoding is not used by SSE servers here;
  // chunk-size lines carry no "seq" and are skipped like any other line.)
  size_t start = 0;
  for (;;) {
    size_t e = c->buf.find("\n\n", start);
    if (e == std::string::npos) break;
    OnFrame(c, start, e);
    start = e + 2;
  }
  c->buf.erase(0, start);
}

void OnWrite(uv_write_t* req, int status) {
  auto* c = static_cast<Conn*>(req->data);
  if (status < 0) {
    c->run->failed++;
    Finish(c);
    CloseConn(c);
  }
}

void OnConnect(uv_connect_t* req, int status) {
  auto* c = static_cast<Conn*>(req->data);
  if (status < 0) {
    fprintf(stderr, "connect: %s\n", uv_err_name(status));
    c->run->failed++;
    Finish(c);
    CloseConn(c);
    return;
  }
  c->run->connected++;
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
    else {
      fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  run.request = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.host + "\r\nAccept: text/event-stream\r\n";
  for (auto& h : o.headers) run.request += h + "\r\n";
  run.request += "\r\n";
  run.latencies_us.reserve(static_cast<size_t>(o.connections) * std::min<long>(o.events, 100000));

  run.loop = uv_default_loop();
  sockaddr_in addr;
  uv_ip4_addr(o.host.c_str(), o.port, &addr);
  for (int i = 0; i < o.connections; i++) {
    auto c = std::make_unique<Conn>();
    c->run = &run;
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
  for (auto& c : run.conns)
    if (c->got < o.events && !c->finished) missing += o.events - c->got;
  double window_s = (run.last_event_us - run.first_event_us) / 1e6;
  std::vector<int32_t>& lat = run.latencies_us;
  printf("{\"connections\":%d,\"streaming\":%d,\"failed\":%d,\"complete\":%d,\"received\":%ld,"
         "\"expected\":%ld,\"missing_at_end\":%ld,\"lost\":%ld,\"duplicated_or_reordered\":%ld,"
         "\"window_s\":%.3f,\"events_per_s\":%.0f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
         "\"p999_ms\":%.2f,\"max_ms\":%.2f,\"client_rss_kib\":%ld}\n",
         o.connections, run.streaming, run.failed, run.done - run.failed, run.received,
         static_cast<long>(o.connections) * o.events, missing, run.lost, run.duplicated, window_s,
         window_s > 0 ? run.received / window_s : 0.0, Percentile(lat, 0.50), Percentile(lat, 0.99),
         Percentile(lat, 0.999), lat.empty() ? 0.0 : *std::max_element(lat.begin(), lat.end()) / 1000.0,
         RssKiB());
  for (auto& c : run.conns) CloseConn(c.get());
  uv_close(reinterpret_cast<uv_handle_t*>(&run.deadline), nullptr);
  uv_run(run.loop, UV_RUN_DEFAULT);
  return uv_loop_close(run.loop) == 0 ? 0 : 3;
}
