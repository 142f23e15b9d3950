#include "sse/frame.hpp"

namespace evstream::sse {
namespace {
void AppendField(std::string* out, std::string_view name, std::string_view value) {
  out->append(name);
  out->append(": ");
  for (char c : value) out->push_back(c == '\r' || c == '\n' ? ' ' : c);
  out->push_back('\n');
}
}  // namespace

std::string Frame(std::string_view event, std::string_view data, std::string_view id) {
  std::string out;
  out.reserve(data.size() + event.size() + id.size() + 32);
  if (!id.empty()) AppendField(&out, "id", id);
  if (!event.empty()) AppendField(&out, "event", event);
  size_t start = 0;
  for (size_t i = 0; i <= data.size(); i++) {
    if (i == data.size() || data[i] == '\n' || data[i] == '\r') {
      out.append("data: ");
      out.append(data.substr(start, i - start));
      out.push_back('\n');
      if (i < data.size() && data[i] == '\r' && i + 1 < data.size() && data[i + 1] == '\n') i++;
      start = i + 1;
    }
  }
  out.push_back('\n');
  return out;
}

std::string RetryHint(int ms) { return "retry: " + std::to_string(ms) + "\n\n"; }

std::string Comment(std::string_view text) {
  std::string out = ": ";
  for (char c : text) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
  out.append("\n\n");
  return out;
}

}  // namespace evstream::sse
