// Publish-side coalescing of high-rate token streams (issue 7). POST /api/publish requests wait
// here until the publisher's one evstream.publish round trip in flight has finished; chunks of
// one stream ({"streamId": s, "text": t}, same channel, type and entity) that wait together are
// merged into one event whose text is their concatenation in arrival order. Everything else
// passes unchanged, in order. Pure C++ (no libuv, no libpq): unit-tested on its own.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace evstream::realtime {

struct Publication {
  std::string channel, type, entity, id, created_by;
  std::string claims;  // the token's claims as JSON: evstream.publish checks them again
  nlohmann::json data = nlohmann::json::object();
  std::vector<uint64_t> tickets;  // requests answered when this publication is sent
  int chunks = 1;                 // chunks merged into this one
};

class Coalescer {
 public:
  // max_payload_bytes: a merged event's payload never grows past this (NOTIFY: < 8000 bytes).
  explicit Coalescer(size_t max_payload_bytes = 7999) : max_payload_bytes_(max_payload_bytes) {}

  // A chunk: data has a string "streamId" and a string "text".
  static bool IsChunk(const Publication& p);
  // An upper bound of the NOTIFY payload's size (escaped data plus the envelope).
  static size_t PayloadBytesBound(const Publication& p);
  // Returns true when p was merged into an earlier waiting chunk of its stream.
  bool Add(Publication p);
  // Everything waiting, in arrival order; the coalescer is empty afterwards.
  std::vector<Publication> TakeAll();
  bool empty() const { return pending_.empty(); }
  size_t size() const { return pending_.size(); }

 private:
  static std::string StreamKey(const Publication& p);
  size_t max_payload_bytes_;
  std::vector<Publication> pending_;
  std::unordered_map<std::string, size_t> open_;  // stream key -> index of its last chunk
};

}  // namespace evstream::realtime
