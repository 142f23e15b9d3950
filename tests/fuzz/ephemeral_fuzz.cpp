// Ephemeral event payloads (daemon/src/feed/event.cpp: ParseEphemeral, EphemeralFromOutbox),
// the outbox rows evstreamd turns into frames. Input: the payload. Properties: it returns; an
// accepted event has a channel and a non-reserved type, its frame is one SSE event.
#include <cstdint>
#include <string>

#include "feed/event.hpp"
#include "fuzz_util.hpp"

namespace feed = evstream::feed;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string payload(fuzz::View(data, size));
  feed::EphemeralPtr ev = feed::ParseEphemeral(payload);
  if (ev) {
    FUZZ_CHECK(!ev->channel.empty() && !ev->type.empty(), "accepted without channel or type");
    FUZZ_CHECK(!feed::IsReservedEphemeralType(ev->type), "accepted a reserved type");
    const std::string& f = *ev->frame;
    FUZZ_CHECK(f.size() >= 2 && f.compare(f.size() - 2, 2, "\n\n") == 0, "frame does not end the event");
    FUZZ_CHECK(f.substr(0, f.size() - 1).find("\n\n") == std::string::npos, "blank line inside the frame");
    FUZZ_CHECK(feed::EphemeralFromOutbox(ev->channel, ev->type, payload) != nullptr, "outbox disagrees");
  }
  return 0;
}
