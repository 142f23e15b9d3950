// conn100k-client: many idle SSE connections from one single-threaded epoll process (issue 15
// item 3). Plain sockets, no libuv: the point is a small, predictable client.
//
//   conn100k-client --port 8080 --path '/api/events/stream?channel=project:bench'
//                   --header 'Authorization: Bearer …' --connections 19000 --sources 4
//                   --in-flight 256 --event-type bench.ping
//
// Opens --connections HTTP/1.1 SSE streams, each socket bound (before connect) to a source
// address 127.0.0.2 .. 127.0.0.(1 + --sources), round-robin, so the ephemeral ports of one source
// address (~55 000) do not cap the count. At most --in-flight connections are between connect()
// and their `connected` frame at any time. When every stream has its `connected` frame it prints
//   READY connections=N failed=F retries=R seconds=S rate=C
// (rate = connections per second from the first connect() to the last `connected` frame), then
// waits on stdin for
//   measure T0_NS POSITION
// (T0_NS: CLOCK_REALTIME in ns just before the event was posted; POSITION: its position). It
// waits until every stream has had an --event-type frame (or --deliver-timeout), then --grace
// seconds more to catch duplicates, and prints
//   DELIVERY ms=M received=R connections=N exactly_once=yes|no missing=A duplicated=B wrong_id=C closed=D
// (ms: from T0 to the moment the last stream received the frame). EOF or `quit` ends it.
//
// Memory: per connection a fixed struct with a 96-byte line buffer; SSE `data:` lines longer than
// that are truncated (only `id:` and `event:` are needed). One 64 KiB read buffer is shared.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace {

struct Options {
  int port = 8080;
  std::string path = "/";
  std::vector<std::string> headers;
  int connections = 1000;
  int sources = 4;
  int in_flight = 256;
  int max_retries = 3;
  std::string event_type = "bench.ping";
  double connect_timeout_s = 300;
  double deliver_timeout_s = 60;
  double grace_s = 2;
};

int64_t NowNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

enum class Phase : uint8_t { Idle, Connecting, Sending, Headers, Streaming, Closed };
enum class Kind : uint8_t { None, Connected, Target, Other };

// One SSE connection. Kept small on purpose: ~150 bytes each.
struct Conn {
  int fd = -1;
  Phase phase = Phase::Idle;
  Kind kind = Kind::None;       // `event:` of the frame being read
  bool connected = false;       // had its `connected` frame
  bool status_ok = false;
  uint8_t retries = 0;
  uint8_t line_len = 0;
  bool line_truncated = false;
  uint16_t sent = 0;            // request bytes written
  uint16_t target_count = 0;    // frames of --event-type received
  int64_t frame_id = -1;        // `id:` of the frame being read
  int64_t target_id = -1;       // `id:` of the first target frame
  int64_t target_ns = 0;        // CLOCK_REALTIME of the first target frame
  char line[96];
};

struct Client {
  Options opt;
  int epfd = -1;
  std::vector<Conn> conns;
  std::string request;
  int next_to_open = 0;         // index of the next connection to open the first time
  std::vector<int> retry_queue;
  int in_flight = 0;
  int connected = 0;
  int failed = 0;               // gave up after max_retries
  int retries = 0;
  int closed_after_ready = 0;
  std::string first_error;
  std::string stdin_pending;
  bool stdin_eof = false;
  char rbuf[65536];
};

void NoteError(Client* c, const std::string& what) {
  if (c->first_error.empty()) c->first_error = what;
}

void CloseFd(Client* c, Conn* k) {
  if (k->fd >= 0) {
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, k->fd, nullptr);
    close(k->fd);
    k->fd = -1;
  }
}

// A connection that failed before its `connected` frame is retried (up to --max-retries);
// one that fails after it is counted as closed.
void Fail(Client* c, int idx, const std::string& why) {
  Conn* k = &c->conns[idx];
  CloseFd(c, k);
  if (k->connected) {
    k->phase = Phase::Closed;
    c->closed_after_ready++;
    NoteError(c, "stream closed after connected: " + why);
    return;
  }
  c->in_flight--;
  NoteError(c, why);
  if (k->retries < c->opt.max_retries) {
    k->retries++;
    c->retries++;
    k->phase = Phase::Idle;
    c->retry_queue.push_back(idx);
  } else {
    k->phase = Phase::Closed;
    c->failed++;
  }
}

void Open(Client* c, int idx) {
  Conn* k = &c->conns[idx];
  k->phase = Phase::Connecting;
  k->line_len = 0;
  k->line_truncated = false;
  k->sent = 0;
  k->status_ok = false;
  k->kind = Kind::None;
  k->frame_id = -1;
  c->in_flight++;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(c, idx, std::string("socket: ") + strerror(errno));
  k->fd = fd;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);  // port chosen at connect
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f000002u + static_cast<uint32_t>(idx % c->opt.sources));
  if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0)
    return Fail(c, idx, std::string("bind: ") + strerror(errno));
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(c->opt.port));
  dst.sin_addr.s_addr = htonl(0x7f000001u);
  if (connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS)
    return Fail(c, idx, std::string("connect: ") + strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.u32 = static_cast<uint32_t>(idx);
  if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
    return Fail(c, idx, std::string("epoll_ctl: ") + strerror(errno));
}

void OpenMore(Client* c) {
  while (c->in_flight < c->opt.in_flight) {
    if (!c->retry_queue.empty()) {
      int idx = c->retry_queue.back();
      c->retry_queue.pop_back();
      Open(c, idx);
    } else if (c->next_to_open < c->opt.connections) {
      Open(c, c->next_to_open++);
    } else {
      break;
    }
  }
}

int64_t ParseId(const char* s, size_t n) {
  int64_t v = 0;
  if (n == 0) return -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

bool Field(const char* line, size_t n, const char* name, const char** value, size_t* value_len) {
  size_t len = strlen(name);
  if (n < len + 1 || memcmp(line, name, len) != 0 || line[len] != ':') return false;
  size_t start = len + 1;
  if (start < n && line[start] == ' ') start++;
  *value = line + start;
  *value_len = n - start;
  return true;
}

// One complete line of the response (without its line ending). Returns false when the
// connection must be failed.
bool OnLine(Client* c, int idx, const char* line, size_t n) {
  Conn* k = &c->conns[idx];
  if (k->phase == Phase::Headers) {
    if (!k->status_ok) {
      if (n >= 12 && memcmp(line, "HTTP/1.1 200", 12) == 0) {
        k->status_ok = true;
        return true;
      }
      NoteError(c, "status: " + std::string(line, n));
      return false;
    }
    if (n == 0) k->phase = Phase::Streaming;
    return true;
  }
  if (n == 0) {  // end of a frame: dispatch it
    if (k->kind == Kind::Connected && !k->connected) {
      k->connected = true;
      c->connected++;
      c->in_flight--;
    } else if (k->kind == Kind::Target) {
      if (k->target_count == 0) {
        k->target_ns = NowNs(CLOCK_REALTIME);
        k->target_id = k->frame_id;
      }
      if (k->target_count < UINT16_MAX) k->target_count++;
    }
    k->kind = Kind::None;
    k->frame_id = -1;
    return true;
  }
  const char* v = nullptr;
  size_t vn = 0;
  if (Field(line, n, "event", &v, &vn)) {
    if (vn == 9 && memcmp(v, "connected", 9) == 0)
      k->kind = Kind::Connected;
    else if (vn == c->opt.event_type.size() && memcmp(v, c->opt.event_type.data(), vn) == 0)
      k->kind = Kind::Target;
    else
      k->kind = Kind::Other;
  } else if (Field(line, n, "id", &v, &vn)) {
    k->frame_id = ParseId(v, vn);
  }
  return true;
}

void OnReadable(Client* c, int idx) {
  Conn* k = &c->conns[idx];
  for (;;) {
    ssize_t got = read(k->fd, c->rbuf, sizeof c->rbuf);
    if (got == 0) return Fail(c, idx, "closed by the server");
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      return Fail(c, idx, std::string("read: ") + strerror(errno));
    }
    for (ssize_t i = 0; i < got; i++) {
      char ch = c->rbuf[i];
      if (ch == '\r') continue;
      if (ch == '\n') {
        bool ok = OnLine(c, idx, k->line, k->line_len);
        k->line_len = 0;
        k->line_truncated = false;
        if (!ok) return Fail(c, idx, "bad response");
        continue;
      }
      if (k->line_len < sizeof k->line)
        k->line[k->line_len++] = ch;
      else
        k->line_truncated = true;  // a long data: line; its prefix is all we look at
    }
    if (got < static_cast<ssize_t>(sizeof c->rbuf)) return;
  }
}

void OnWritable(Client* c, int idx) {
  Conn* k = &c->conns[idx];
  if (k->phase == Phase::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Fail(c, idx, std::string("connect: ") + strerror(err));
    k->phase = Phase::Sending;
  }
  while (k->sent < c->request.size()) {
    ssize_t n = write(k->fd, c->request.data() + k->sent, c->request.size() - k->sent);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      return Fail(c, idx, std::string("write: ") + strerror(errno));
    }
    k->sent = static_cast<uint16_t>(k->sent + n);
  }
  k->phase = Phase::Headers;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = static_cast<uint32_t>(idx);
  epoll_ctl(c->epfd, EPOLL_CTL_MOD, k->fd, &ev);
}

void OnStdin(Client* c) {
  char buf[256];
  for (;;) {
    ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
    if (got > 0) {
      c->stdin_pending.append(buf, static_cast<size_t>(got));
      continue;
    }
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
    c->stdin_eof = true;
    epoll_ctl(c->epfd, EPOLL_CTL_DEL, STDIN_FILENO, nullptr);
    return;
  }
}

// Waits for events for at most timeout_ms and handles them.
void Turn(Client* c, int timeout_ms) {
  epoll_event evs[512];
  int n = epoll_wait(c->epfd, evs, 512, timeout_ms);
  for (int i = 0; i < n; i++) {
    if (evs[i].data.u32 == UINT32_MAX) {
      OnStdin(c);
      continue;
    }
    int idx = static_cast<int>(evs[i].data.u32);
    Conn* k = &c->conns[idx];
    if (k->fd < 0) continue;
    if (evs[i].events & EPOLLIN) OnReadable(c, idx);
    if (k->fd < 0) continue;
    if (evs[i].events & EPOLLOUT) OnWritable(c, idx);
    else if ((evs[i].events & (EPOLLERR | EPOLLHUP)) && !(evs[i].events & EPOLLIN))
      Fail(c, idx, "socket error");
  }
}

// Serves the connections until a command line is available on stdin; false at EOF.
bool ReadCommand(Client* c, std::string* line) {
  for (;;) {
    size_t nl = c->stdin_pending.find('\n');
    if (nl != std::string::npos) {
      *line = c->stdin_pending.substr(0, nl);
      c->stdin_pending.erase(0, nl + 1);
      return true;
    }
    if (c->stdin_eof) return false;
    Turn(c, 1000);
  }
}

void Measure(Client* c, int64_t t0_ns, int64_t expect_id) {
  int64_t deadline = NowNs(CLOCK_MONOTONIC) + static_cast<int64_t>(c->opt.deliver_timeout_s * 1e9);
  auto have_all = [c] {
    for (const Conn& k : c->conns)
      if (k.connected && k.fd >= 0 && k.target_count == 0) return false;
    return true;
  };
  while (!have_all() && NowNs(CLOCK_MONOTONIC) < deadline) Turn(c, 20);
  int64_t grace_end = NowNs(CLOCK_MONOTONIC) + static_cast<int64_t>(c->opt.grace_s * 1e9);
  while (NowNs(CLOCK_MONOTONIC) < grace_end) Turn(c, 50);

  int received = 0, missing = 0, duplicated = 0, wrong = 0;
  int64_t last_ns = 0;
  for (const Conn& k : c->conns) {
    if (!k.connected) continue;
    if (k.target_count == 0) {
      missing++;
      continue;
    }
    received++;
    if (k.target_count > 1) duplicated++;
    if (expect_id >= 0 && k.target_id != expect_id) wrong++;
    if (k.target_ns > last_ns) last_ns = k.target_ns;
  }
  bool once = received == c->opt.connections && missing == 0 && duplicated == 0 && wrong == 0 &&
              c->closed_after_ready == 0;
  printf("DELIVERY ms=%.1f received=%d connections=%d exactly_once=%s missing=%d duplicated=%d wrong_id=%d closed=%d\n",
         received > 0 ? (last_ns - t0_ns) / 1e6 : -1.0, received, c->opt.connections, once ? "yes" : "no",
         missing, duplicated, wrong, c->closed_after_ready);
  fflush(stdout);
}

void Usage() {
  fprintf(stderr,
          "usage: conn100k-client --port P --path PATH [--header 'K: V']... --connections N\n"
          "       [--sources K] [--in-flight M] [--event-type T] [--connect-timeout S]\n"
          "       [--deliver-timeout S] [--grace S]\n");
  exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  static Client client;  // the read buffer is not for the stack
  Client* c = &client;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) Usage();
    const char* v = argv[++i];
    if (a == "--port") c->opt.port = atoi(v);
    else if (a == "--path") c->opt.path = v;
    else if (a == "--header") c->opt.headers.push_back(v);
    else if (a == "--connections") c->opt.connections = atoi(v);
    else if (a == "--sources") c->opt.sources = atoi(v);
    else if (a == "--in-flight") c->opt.in_flight = atoi(v);
    else if (a == "--event-type") c->opt.event_type = v;
    else if (a == "--connect-timeout") c->opt.connect_timeout_s = atof(v);
    else if (a == "--deliver-timeout") c->opt.deliver_timeout_s = atof(v);
    else if (a == "--grace") c->opt.grace_s = atof(v);
    else Usage();
  }
  if (c->opt.connections < 1 || c->opt.sources < 1 || c->opt.sources > 250 || c->opt.in_flight < 1) Usage();

  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  c->request = "GET " + c->opt.path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(c->opt.port) +
               "\r\nAccept: text/event-stream\r\n";
  for (const auto& h : c->opt.headers) c->request += h + "\r\n";
  c->request += "\r\n";
  c->conns.resize(static_cast<size_t>(c->opt.connections));
  c->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (c->epfd < 0) {
    perror("epoll_create1");
    return 1;
  }

  int64_t start = NowNs(CLOCK_MONOTONIC);
  int64_t deadline = start + static_cast<int64_t>(c->opt.connect_timeout_s * 1e9);
  while (c->connected + c->failed < c->opt.connections && NowNs(CLOCK_MONOTONIC) < deadline) {
    OpenMore(c);
    Turn(c, 100);
  }
  double secs = (NowNs(CLOCK_MONOTONIC) - start) / 1e9;
  printf("READY connections=%d failed=%d retries=%d seconds=%.3f rate=%.0f\n", c->connected, c->failed,
         c->retries, secs, c->connected / secs);
  if (!c->first_error.empty()) fprintf(stderr, "first error: %s\n", c->first_error.c_str());
  fflush(stdout);

  // From here on stdin commands; stdin is watched by the same epoll set.
  fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = UINT32_MAX;
  epoll_ctl(c->epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
  std::string line;
  while (ReadCommand(c, &line)) {
    long long t0 = 0, pos = -1;
    if (sscanf(line.c_str(), "measure %lld %lld", &t0, &pos) >= 1) {
      // The event may have arrived before the command: receive times and ids are kept from the
      // start, so this only waits for the rest.
      Measure(c, t0, pos);
    } else if (line == "quit") {
      break;
    }
  }
  return 0;
}
