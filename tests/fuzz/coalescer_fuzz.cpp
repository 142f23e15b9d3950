// The publish-side chunk coalescer (daemon/src/realtime/coalescer.cpp). The input drives a
// sequence of publications (chunks of a few streams, stream ends, other events, odd data such
// as a non-string text or a non-boolean done). Properties: every publication is accounted
// for (chunks and tickets), tickets keep their order, and a merged event stays within the
// payload limit.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>

#include "fuzz_util.hpp"
#include "realtime/coalescer.hpp"

using evstream::realtime::Coalescer;
using evstream::realtime::Publication;
using nlohmann::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  size_t limit = in.ConsumeIntegralInRange<size_t>(0, 2000);
  Coalescer c(limit);
  uint64_t next_ticket = 0;
  int added = 0;
  while (in.remaining_bytes() > 0) {
    Publication p;
    p.channel = in.ConsumeBool() ? "channel:a" : "channel:b";
    p.type = in.ConsumeBool() ? "ai.chunk" : "typing";
    p.entity = in.ConsumeRandomLengthString(8);
    p.created_by = "user:u";
    int kind = in.ConsumeIntegralInRange<int>(0, 5);
    std::string stream = in.ConsumeBool() ? "s1" : "s2";
    if (kind <= 2) p.data = {{"streamId", stream}, {"text", in.ConsumeRandomLengthString(64)}};
    else if (kind == 3) p.data = {{"streamId", stream}, {"done", true}};
    else if (kind == 4) p.data = {{"streamId", stream}, {"text", 7}, {"done", "yes"}};
    else p.data = json::parse(in.ConsumeRandomLengthString(64), nullptr, false);
    if (p.data.is_discarded() || !p.data.is_object()) p.data = json::object();
    if (in.ConsumeBool()) p.data["done"] = in.ConsumeBool();
    p.tickets = {next_ticket++};
    bool chunk = Coalescer::IsChunk(p);
    size_t alone = Coalescer::PayloadBytesBound(p);
    bool merged = c.Add(std::move(p));
    FUZZ_CHECK(!merged || chunk, "a non-chunk was merged");
    (void)alone;
    added++;
    if (in.ConsumeIntegralInRange<int>(0, 7) == 0 || in.remaining_bytes() == 0) {
      std::vector<Publication> out = c.TakeAll();
      FUZZ_CHECK(c.empty(), "TakeAll left something behind");
      int chunks = 0;
      uint64_t last = 0;
      bool first = true;
      std::vector<uint64_t> all;
      for (const Publication& o : out) {
        chunks += o.chunks;
        if (o.chunks > 1) FUZZ_CHECK(Coalescer::PayloadBytesBound(o) <= limit, "merged event over the limit");
        for (uint64_t t : o.tickets) all.push_back(t);
        FUZZ_CHECK(static_cast<int>(o.tickets.size()) == o.chunks, "tickets and chunks disagree");
      }
      FUZZ_CHECK(chunks == added, "a publication was lost or duplicated");
      std::sort(all.begin(), all.end());
      for (uint64_t t : all) {
        FUZZ_CHECK(first || t == last + 1, "a ticket was lost or duplicated");
        last = t;
        first = false;
      }
      added = 0;
    }
  }
  return 0;
}
