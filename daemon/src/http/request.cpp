#include "http/request.hpp"

#include <cctype>
#include <climits>
#include <cstring>

#include "core/json_out.hpp"

namespace evstream::http {
namespace {
constexpr size_t kMaxHeaders = 100;
constexpr size_t kMaxTarget = 16 * 1024;
int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '%' && i + 2 < s.size() && Hex(s[i + 1]) >= 0 && Hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(Hex(s[i + 1]) * 16 + Hex(s[i + 2])));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::optional<std::string> FirstInvalidText(const Request& r) {
  if (!core::IsValidUtf8(r.path)) return "the path";
  for (const auto& [k, v] : r.QueryParams()) {
    if (!core::IsValidUtf8(k)) return "a query parameter name";
    if (!core::IsValidUtf8(v)) return "query parameter " + k;
  }
  for (const char* name : {"last-event-id", "x-project-id", "idempotency-key"})
    if (const std::string* h = r.Header(name); h && !core::IsValidUtf8(*h)) {
      std::string shown = name;
      bool up = true;
      for (auto& c : shown) {
        if (up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        up = c == '-';
      }
      if (shown == "Last-Event-Id") shown = "Last-Event-ID";
      return "header " + shown;
    }
  return std::nullopt;
}

const std::string* Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> Request::QueryParams() const {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start <= query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string::npos) amp = query.size();
    std::string_view part(query.data() + start, amp - start);
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos)
        out.emplace_back(PercentDecode(part, true), "");
      else
        out.emplace_back(PercentDecode(part.substr(0, eq), true), PercentDecode(part.substr(eq + 1), true));
    }
    start = amp + 1;
  }
  return out;
}

std::vector<std::string> Request::QueryAll(std::string_view name) const {
  std::vector<std::string> out;
  for (auto& [k, v] : QueryParams())
    if (k == name) out.push_back(v);
  return out;
}

std::optional<std::string> Request::QueryOne(std::string_view name) const {
  for (auto& [k, v] : QueryParams())
    if (k == name) return v;
  return std::nullopt;
}

std::optional<std::string> Request::Cookie(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k != "cookie") continue;
    size_t start = 0;
    while (start < v.size()) {
      size_t semi = v.find(';', start);
      if (semi == std::string::npos) semi = v.size();
      std::string_view part(v.data() + start, semi - start);
      while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
      size_t eq = part.find('=');
      if (eq != std::string_view::npos && part.substr(0, eq) == name) {
        std::string_view val = part.substr(eq + 1);
        if (val.size() >= 2 && val.front() == '"' && val.back() == '"') val = val.substr(1, val.size() - 2);
        return PercentDecode(val, false);
      }
      start = semi + 1;
    }
  }
  return std::nullopt;
}

RequestParser::RequestParser(size_t max_body_bytes) : max_body_(max_body_bytes) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = OnMessageBegin;
  settings_.on_url = OnUrl;
  settings_.on_header_field = OnHeaderField;
  settings_.on_header_value = OnHeaderValue;
  settings_.on_headers_complete = OnHeadersComplete;
  settings_.on_body = OnBody;
  settings_.on_message_complete = OnMessageComplete;
}

int RequestParser::OnMessageBegin(http_parser* p) {
  auto* self = static_cast<RequestParser*>(p->data);
  self->req_ = Request{};
  self->in_value_ = false;
  self->in_field_ = false;
  self->dropping_ = false;
  self->over_limit_status_ = 0;
  self->expect_continue_ = false;
  self->headers_done_ = false;
  return 0;
}

// Limits on the target and the number of headers are decided once the whole head has parsed
// (OnHeadersComplete), never inside a data callback: http_parser calls those at the end of every
// buffer it is given, so an error raised there would depend on how TCP split the bytes (a head
// with 101 headers and a bad byte in the 101st answered 431 or 400 by where a segment ended).
// Until then what is over a limit is not kept: memory stays bounded by the limits, and the scan
// by http_parser's own limit on the head's size (431).
int RequestParser::OnUrl(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<RequestParser*>(p->data);
  std::string& t = self->req_.target;
  if (t.size() + len > kMaxTarget) {
    self->over_limit_status_ = 414;
    len = t.size() < kMaxTarget ? kMaxTarget - t.size() : 0;
  }
  t.append(at, len);
  return 0;
}

int RequestParser::OnHeaderField(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<RequestParser*>(p->data);
  auto& h = self->req_.headers;
  if (self->in_value_ || !self->in_field_) {
    self->in_value_ = false;
    self->in_field_ = true;
    if (h.size() >= kMaxHeaders) {
      if (self->over_limit_status_ == 0) self->over_limit_status_ = 431;
      self->dropping_ = true;
    } else {
      h.emplace_back();
      self->dropping_ = false;
    }
  }
  if (!self->dropping_) h.back().first.append(at, len);
  return 0;
}

int RequestParser::OnHeaderValue(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<RequestParser*>(p->data);
  self->in_value_ = true;
  if (!self->dropping_ && !self->req_.headers.empty()) self->req_.headers.back().second.append(at, len);
  return 0;
}

int RequestParser::OnHeadersComplete(http_parser* p) {
  auto* self = static_cast<RequestParser*>(p->data);
  if (self->over_limit_status_ != 0) {
    self->error_status_ = self->over_limit_status_;
    return -1;
  }
  Request& r = self->req_;
  for (auto& h : r.headers) h.first = Lower(h.first);
  r.method = http_method_str(static_cast<http_method>(p->method));
  http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(r.target.data(), r.target.size(), 0, &u) != 0) {
    self->error_status_ = 400;
    return -1;
  }
  if (u.field_set & (1 << UF_PATH))
    r.path = PercentDecode(std::string_view(r.target).substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len), false);
  if (u.field_set & (1 << UF_QUERY))
    r.query = r.target.substr(u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
  if (p->content_length != ULLONG_MAX && p->content_length > self->max_body_) {
    self->error_status_ = 413;
    return -1;
  }
  if (const std::string* e = r.Header("expect"); e && Lower(*e) == "100-continue") self->expect_continue_ = true;
  self->headers_done_ = true;
  return 0;
}

int RequestParser::OnBody(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<RequestParser*>(p->data);
  if (self->req_.body.size() + len > self->max_body_) {
    self->error_status_ = 413;
    return 1;
  }
  self->req_.body.append(at, len);
  return 0;
}

int RequestParser::OnMessageComplete(http_parser* p) {
  auto* self = static_cast<RequestParser*>(p->data);
  self->req_.keep_alive = http_should_keep_alive(p) != 0;
  self->complete_ = true;
  http_parser_pause(p, 1);  // one request at a time; the rest waits in leftover_
  return 0;
}

RequestParser::Status RequestParser::Run(const char* data, size_t len) {
  complete_ = false;
  size_t used = http_parser_execute(&parser_, &settings_, data, len);
  auto err = HTTP_PARSER_ERRNO(&parser_);
  if (complete_) {
    headers_done_ = false;
    if (err == HPE_PAUSED) http_parser_pause(&parser_, 0);
    leftover_.assign(data + used, len - used);
    return Status::Complete;
  }
  if (err != HPE_OK) {
    if (err == HPE_HEADER_OVERFLOW) error_status_ = 431;
    else if (err != HPE_CB_headers_complete && err != HPE_CB_body && err != HPE_CB_url &&
             err != HPE_CB_header_field)
      error_status_ = 400;
    return Status::Error;
  }
  return Status::NeedMore;
}

RequestParser::Status RequestParser::Feed(const char* data, size_t len) {
  if (!leftover_.empty()) {
    leftover_.append(data, len);
    std::string buf = std::move(leftover_);
    leftover_.clear();
    return Run(buf.data(), buf.size());
  }
  return Run(data, len);
}

void RequestParser::ReleaseRequest() {
  req_ = Request{};
  std::string().swap(leftover_);
}

RequestParser::Status RequestParser::Next() {
  std::string buf = std::move(leftover_);
  leftover_.clear();
  if (buf.empty()) return Status::NeedMore;
  return Run(buf.data(), buf.size());
}

}  // namespace evstream::http
