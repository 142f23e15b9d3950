#include "api/common.hpp"

#include "core/log.hpp"

namespace evstream::api {
using nlohmann::json;

void Replier::operator()(http::Response r) const {
  auto c = conn.lock();
  if (!c || c->closing()) return;
  for (const auto& h : extra) r.headers.push_back(h);
  if (head) r.head_only = true;
  c->Respond(r);
}

int StatusForSqlState(const std::string& s) {
  if (s.empty()) return 503;
  if (s == "EV001" || s == "EV002") return 409;
  if (s == "EV003" || s == "EV004") return 422;
  if (s == "EV005" || s == "42501") return 403;
  if (s == "EV006") return 410;
  if (s == "57014") return 503;  // statement_timeout
  if (s.rfind("22", 0) == 0 || s == "23514" || s == "23502") return 400;
  return 500;
}

std::string ErrorCodeForSqlState(const std::string& s) {
  if (s.empty()) return "database_unavailable";
  if (s == "EV001") return "version_conflict";
  if (s == "EV002") return "idempotency_conflict";
  if (s == "EV003") return "invalid_data";
  if (s == "EV004") return "illegal_transition";
  if (s == "EV005" || s == "42501") return "forbidden";
  if (s == "EV006") return "unknown_position";
  if (s == "57014") return "statement_timeout";
  if (s.rfind("22", 0) == 0 || s == "23514" || s == "23502") return "bad_request";
  return "internal_error";
}

http::Response DbErrorResponse(const feed::QueryResult& r) {
  if (r.overloaded) {
    http::Response busy = http::JsonError(503, "busy", r.error);
    busy.headers.emplace_back("Retry-After", "1");
    return busy;
  }
  int status = StatusForSqlState(r.sqlstate);
  if (status >= 500 && !r.sqlstate.empty())
    core::LogError("database error", {{"error", r.error}, {"sqlstate", r.sqlstate}});
  std::string message = r.sqlstate == "57014" ? "the database statement took too long"
                        : status == 503       ? "database unavailable"
                        : status >= 500       ? "internal error"
                                              : r.error;
  json extra = json::object();
  if (!r.sqlstate.empty() && status < 500) {
    extra["sqlstate"] = r.sqlstate;
    if (!r.detail.empty()) extra["detail"] = r.detail;
    if (!r.hint.empty()) extra["hint"] = r.hint;
  }
  http::Response out = http::JsonError(status, ErrorCodeForSqlState(r.sqlstate), message, extra);
  if (status == 503) out.headers.emplace_back("Retry-After", "1");
  return out;
}

bool ParseInt(const std::string& s, long long min, long long max, long long* out) {
  int64_t v;
  if (!core::ParseInt64(s, &v) || v < min || v > max) return false;
  *out = v;
  return true;
}

bool BodyOrReply(const Call& c, json* out, bool allow_empty) {
  if (allow_empty && c.req.body.empty()) {
    *out = json::object();
    return true;
  }
  core::JsonBody body = core::ParseJsonObject(c.req.body);
  if (!body.ok()) {
    json more = json::object();
    if (body.offset >= 0) more["offset"] = body.offset;
    c.Reply(http::JsonError(400, "bad_request", body.error, more));
    return false;
  }
  *out = std::move(body.value);
  return true;
}

http::Response FieldError(const core::Fields& f) {
  return http::JsonError(400, "bad_request", f.error(), {{"field", f.field()}});
}

bool HasRole(const json& claims, const std::string& role) {
  if (!claims.is_object()) return false;
  auto it = claims.find("roles");
  if (it == claims.end() || !it->is_array()) return false;
  for (const auto& r : *it)
    if (r.is_string() && r.get<std::string>() == role) return true;
  return false;
}

}  // namespace evstream::api
