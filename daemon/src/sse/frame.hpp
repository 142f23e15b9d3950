// Server-Sent Events framing (WHATWG HTML "event stream" format).
#pragma once
#include <string>
#include <string_view>

namespace evstream::sse {

// "id: <id>\nevent: <event>\ndata: <line>\n…\n\n". Multi-line data becomes one data: field per
// line (CR, LF and CRLF all split). CR/LF in the event name or id are replaced by spaces so a
// field can never end the frame early; an empty id or event is omitted.
std::string Frame(std::string_view event, std::string_view data, std::string_view id = {});

// "retry: <ms>\n\n"
std::string RetryHint(int ms);

// ": <text>\n\n" (a comment; EventSource ignores it).
std::string Comment(std::string_view text);

}  // namespace evstream::sse
