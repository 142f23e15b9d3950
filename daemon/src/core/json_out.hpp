// JSON out that cannot throw on bad UTF-8: every response body, frame, NOTIFY payload and log
// line is serialised here. Invalid UTF-8 (from a header, a query, a token claim, a database row
// in SQL_ASCII…) becomes U+FFFD instead of nlohmann's type_error 316. Request fields where the
// bytes matter (Last-Event-ID, channels) are refused with 400 before they get here
// (http::FirstInvalidText); this is the net under everything else.
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace evstream::core {

std::string DumpJson(const nlohmann::json& j);
std::string DumpJson(const nlohmann::ordered_json& j);
// A JSON string literal ("…" with escapes) for text of unknown encoding.
std::string JsonString(std::string_view s);

// Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace evstream::core
