#include "realtime/coalescer.hpp"

#include "core/input.hpp"
#include "core/json_out.hpp"

namespace evstream::realtime {

bool Coalescer::IsChunk(const Publication& p) {
  auto s = p.data.find("streamId");
  auto t = p.data.find("text");
  return s != p.data.end() && s->is_string() && t != p.data.end() && t->is_string();
}

size_t Coalescer::PayloadBytesBound(const Publication& p) {
  // Envelope: keys, quotes, ephemeralId (36), timestamp (24) and escaping of the short strings.
  size_t strings = p.channel.size() + p.type.size() + p.entity.size() + p.id.size() + p.created_by.size();
  return core::DumpJson(p.data).size() + 2 * strings + 200;
}

std::string Coalescer::StreamKey(const Publication& p) {
  std::string key;
  for (const std::string* part : {&p.channel, &p.type, &p.entity, &p.id, &p.created_by, &p.claims}) {
    key += *part;
    key.push_back('\0');
  }
  auto s = p.data.find("streamId");
  if (s != p.data.end()) key += core::AsString(*s).value_or("");
  return key;
}

// A chunk joins the last waiting chunk of its stream unless that one is done (its stream ended:
// whatever follows starts a new event) or the merged text would pass the size limit. Fields other
// than text come from the newest chunk (its done flag, index, …).
bool Coalescer::Add(Publication p) {
  if (!IsChunk(p)) {
    // A non-chunk event of a stream (e.g. {"streamId", "done": true}) closes it: later chunks
    // must not jump ahead of it.
    if (auto s = p.data.find("streamId"); s != p.data.end() && s->is_string()) {
      Publication probe = p;
      probe.data["text"] = "";
      open_.erase(StreamKey(probe));
    }
    pending_.push_back(std::move(p));
    return false;
  }
  std::string key = StreamKey(p);
  auto it = open_.find(key);
  if (it != open_.end()) {
    Publication& last = pending_[it->second];
    // Typed: only a boolean true ends the stream ("done": "yes" is refused at the HTTP edge, and
    // anything else that is not true reads as not done here).
    auto d = last.data.find("done");
    bool done = d != last.data.end() && core::AsBool(*d).value_or(false);
    Publication merged;
    if (!done) {
      merged.channel = p.channel;
      merged.type = p.type;
      merged.entity = p.entity;
      merged.id = p.id;
      merged.created_by = p.created_by;
      merged.claims = p.claims;
      merged.data = p.data;
      merged.data["text"] = core::AsString(last.data["text"]).value_or("") + core::AsString(p.data["text"]).value_or("");
    }
    if (!done && PayloadBytesBound(merged) <= max_payload_bytes_) {
      last.data = std::move(merged.data);
      last.chunks += p.chunks;
      last.tickets.insert(last.tickets.end(), p.tickets.begin(), p.tickets.end());
      return true;
    }
  }
  open_[key] = pending_.size();
  pending_.push_back(std::move(p));
  return false;
}

std::vector<Publication> Coalescer::TakeAll() {
  std::vector<Publication> out = std::move(pending_);
  pending_.clear();
  open_.clear();
  return out;
}

}  // namespace evstream::realtime
