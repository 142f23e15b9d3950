// The stream's position logic (sse::Cursor) against a simulated log, feed and client queue:
// every gap of issue 11 (quiet channel, empty log, feed not positioned, held-back events, the
// replay/live seam, overflowing buffers, lagging clients, resets) delivers each event once, in
// the gap-free order, and every id sent is a safe place to resume from.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <regex>

#include "sse/cursor.hpp"

using namespace evstream;
using sse::Cursor;
using sse::ReplayRow;

namespace {

struct LogEvent {
  feed::LogKey key;
  std::string channel;
  std::string type = "doc";
  bool committed = true;
};

// A log with transactions that may still be open: like read_after, only events whose tx is
// below every open transaction's tx (the horizon) can be read.
struct FakeLog {
  std::vector<LogEvent> events;  // in position order
  int64_t next_position = 1;
  uint64_t next_tx = 100;

  uint64_t Begin() { return next_tx++; }
  int64_t Append(uint64_t tx, const std::string& channel, bool committed = true, const std::string& type = "doc") {
    events.push_back({{tx, next_position}, channel, type, committed});
    return next_position++;
  }
  int64_t Post(const std::string& channel, const std::string& type = "doc") {
    return Append(Begin(), channel, true, type);
  }
  void Commit(uint64_t tx) {
    for (auto& e : events)
      if (e.key.tx == tx) e.committed = true;
  }
  uint64_t Horizon() const {
    uint64_t h = next_tx;
    for (const auto& e : events)
      if (!e.committed) h = std::min(h, e.key.tx);
    return h;
  }
  std::vector<LogEvent> Readable() const {
    std::vector<LogEvent> out;
    uint64_t h = Horizon();
    for (const auto& e : events)
      if (e.committed && e.key.tx < h) out.push_back(e);
    std::sort(out.begin(), out.end(), [](const LogEvent& a, const LogEvent& b) { return a.key < b.key; });
    return out;
  }
  std::optional<feed::LogKey> Find(int64_t position) const {
    for (const auto& e : events)
      if (e.key.position == position) return e.key;
    return std::nullopt;
  }
};

feed::EventPtr MakeEv(const LogEvent& le, size_t pad = 0) {
  auto e = std::make_shared<feed::Event>();
  e->key = le.key;
  e->channel = le.channel;
  e->aggregate_type = le.type;
  e->aggregate_id = "a";
  e->event_type = le.type + ".happened";
  e->frame = std::make_shared<const std::string>("id: " + std::to_string(le.key.position) + "\nevent: " +
                                                 e->event_type + "\ndata: {}" + std::string(pad, ' ') + "\n\n");
  return e;
}

// The world one Cursor sees: the client's queue, the feed, the pool's queries, a clock.
struct Sim : sse::CursorIo {
  FakeLog* log;
  std::string channel;           // the stream's one channel
  size_t pad = 0;                // extra bytes per event frame
  // The feed (shared by all streams in a real daemon; here per Sim, reading the same log).
  bool positioned = true;
  feed::LogKey feed_cursor;
  // The client.
  size_t queued = 0;
  std::vector<std::string> frames;
  bool dropped = false, closed = false;
  // Queries in flight.
  std::optional<int64_t> anchor_query;
  std::optional<std::pair<int64_t, int>> read_query;
  bool drain_tick = false;
  uint64_t now = 1000;
  std::unique_ptr<Cursor> cursor;

  Sim(FakeLog* l, std::string ch, sse::CursorLimits limits = {}, std::vector<std::string> topics = {})
      : log(l), channel(std::move(ch)) {
    cursor = std::make_unique<Cursor>(this, limits, std::move(topics), nullptr);
  }

  size_t QueuedBytes() const override { return queued; }
  uint64_t NowMs() const override { return now; }
  bool FeedPositioned() const override { return positioned; }
  feed::LogKey FeedCursor() const override { return feed_cursor; }
  void Send(const std::shared_ptr<const std::string>& f) override {
    frames.push_back(*f);
    queued += f->size();
  }
  void ReadAnchor(int64_t position) override { anchor_query = position; }
  void ReadAfter(int64_t position, int limit) override { read_query = {position, limit}; }
  void WaitForDrain() override { drain_tick = true; }
  void DropSlowClient() override { dropped = true; }
  void CloseAfterFlush() override { closed = true; }

  // Positions the feed at the end of what is readable now (FindTail).
  void FeedFindTail() {
    auto r = log->Readable();
    feed_cursor = r.empty() ? feed::LogKey{} : r.back().key;
    positioned = true;
  }
  // One feed read: fans out every readable event after the feed's cursor (the hub passes only
  // this stream's channel on).
  void FeedRead() {
    for (const auto& e : log->Readable()) {
      if (!(feed_cursor < e.key)) continue;
      feed_cursor = e.key;
      if (e.channel == channel) cursor->OnLive(MakeEv(e, pad));
    }
  }
  std::string Connect(const std::string& last_id) {
    std::string id = Cursor::StartId(*this, last_id);
    frames.push_back("id: " + id + "\nevent: connected\n\n");
    cursor->Begin(last_id);
    return id;
  }
  // Answers the anchor query as the database would.
  void AnswerAnchor() {
    ASSERT_TRUE(anchor_query.has_value());
    int64_t p = *anchor_query;
    anchor_query.reset();
    auto key = log->Find(p);
    cursor->OnAnchor(true, key.has_value(), key ? key->tx : 0);
  }
  // Answers the replay read as read_after would, now.
  void AnswerRead() {
    ASSERT_TRUE(read_query.has_value());
    auto [after, limit] = *read_query;
    read_query.reset();
    feed::LogKey from{};
    if (after > 0) {
      auto key = log->Find(after);
      if (!key) {
        cursor->OnReplayRows(Cursor::ReadStatus::kUnknownPosition, {});
        return;
      }
      from = *key;
    }
    std::vector<ReplayRow> rows;
    for (const auto& e : log->Readable()) {
      if (!(from < e.key) || e.channel != channel) continue;
      if (static_cast<int>(rows.size()) >= limit) break;
      rows.push_back({e.key, MakeEv(e, pad)});
    }
    cursor->OnReplayRows(Cursor::ReadStatus::kOk, rows);
  }
  // Answers queries and drain ticks until the stream is live (or done), draining the client.
  void RunUntilLive(int max_steps = 1000) {
    for (int i = 0; i < max_steps; i++) {
      if (cursor->state() == Cursor::State::kLive || cursor->state() == Cursor::State::kDone) return;
      queued = 0;
      if (anchor_query) AnswerAnchor();
      else if (read_query) AnswerRead();
      else if (drain_tick) { drain_tick = false; cursor->OnDrainTick(); }
    }
    FAIL() << "never went live";
  }

  // What the client saw: positions of event frames, and the id it would resume from.
  std::vector<int64_t> Delivered() const {
    std::vector<int64_t> out;
    std::regex re("^id: (\\d+)\nevent: ([a-z.]+)\n");
    for (const auto& f : frames) {
      std::smatch m;
      if (std::regex_search(f, m, re) && m[2] != "connected" && m[2] != "reset") out.push_back(std::stoll(m[1]));
    }
    return out;
  }
  std::string LastId() const {
    std::string id;
    std::regex re("(^|\n)id: ([^\n]*)\n");
    for (const auto& f : frames) {
      std::smatch m;
      if (std::regex_search(f, m, re) && !m[2].str().empty()) id = m[2];
    }
    return id;
  }
  bool Sent(const std::string& event) const {
    for (const auto& f : frames)
      if (f.find("event: " + event + "\n") != std::string::npos) return true;
    return false;
  }
};

std::vector<int64_t> Range(int64_t a, int64_t b) {
  std::vector<int64_t> v;
  for (int64_t i = a; i <= b; i++) v.push_back(i);
  return v;
}

}  // namespace

TEST(Cursor, quiet_channel_connected_id_resumes_everything_committed_while_away) {
  FakeLog log;
  log.Post("project:other");
  log.Post("project:other");
  Sim first(&log, "project:p");
  first.FeedFindTail();
  std::string id = first.Connect("");
  EXPECT_EQ(id, "2") << "the feed's read cursor";
  EXPECT_EQ(first.cursor->state(), Cursor::State::kLive);
  EXPECT_TRUE(first.Delivered().empty());
  // The client leaves before any event; three are committed on its channel, one elsewhere.
  int64_t a = log.Post("project:p"), b = log.Post("project:other"), c = log.Post("project:p"),
          e = log.Post("project:p");
  (void)b;
  Sim again(&log, "project:p");
  again.FeedFindTail();
  EXPECT_EQ(again.Connect(id), id) << "a resumed stream starts where the client was";
  again.RunUntilLive();
  EXPECT_EQ(again.Delivered(), (std::vector<int64_t>{a, c, e}));
  EXPECT_EQ(again.LastId(), std::to_string(e));
}

TEST(Cursor, empty_log_connected_id_is_zero_and_replays_from_the_start) {
  FakeLog log;
  Sim first(&log, "project:p");
  first.FeedFindTail();
  EXPECT_EQ(first.Connect(""), "0");
  int64_t a = log.Post("project:p"), b = log.Post("project:p");
  Sim again(&log, "project:p");
  again.FeedFindTail();
  again.Connect("0");
  again.RunUntilLive();
  EXPECT_EQ(again.Delivered(), (std::vector<int64_t>{a, b}));
}

TEST(Cursor, feed_not_positioned_sends_an_id_only_frame_once_it_is) {
  FakeLog log;
  log.Post("project:p");
  Sim s(&log, "project:p");
  s.positioned = false;
  EXPECT_EQ(s.Connect(""), "") << "no safe position yet";
  EXPECT_FALSE(s.cursor->HasPosition());
  s.FeedFindTail();
  s.cursor->OnFeedPositioned();
  EXPECT_EQ(s.frames.back(), "id: 1\n\n");
  s.cursor->OnFeedPositioned();  // only once
  EXPECT_EQ(s.frames.size(), 2u);
  int64_t a = log.Post("project:p");
  s.FeedRead();
  EXPECT_EQ(s.Delivered(), (std::vector<int64_t>{a}));
  // Leaving before `a` and resuming from the id-only frame's id misses nothing.
  Sim again(&log, "project:p");
  again.FeedFindTail();
  again.Connect("1");
  again.RunUntilLive();
  EXPECT_EQ(again.Delivered(), (std::vector<int64_t>{a}));
}

TEST(Cursor, held_back_event_is_not_skipped_by_the_connected_id_but_a_post_position_would_skip_it) {
  FakeLog log;
  log.Post("project:p");
  uint64_t slow = log.Begin();
  int64_t held = log.Append(slow, "project:p", /*committed=*/false);
  int64_t quick = log.Post("project:p");  // committed, but sorts after the open transaction
  Sim first(&log, "project:p");
  first.FeedFindTail();
  std::string id = first.Connect("");
  EXPECT_EQ(id, "1") << "neither event is readable yet";
  log.Commit(slow);
  Sim again(&log, "project:p");
  again.FeedFindTail();
  again.Connect(id);
  again.RunUntilLive();
  EXPECT_EQ(again.Delivered(), (std::vector<int64_t>{held, quick}));
  // The position POST /api/events answered for `quick` is not a safe id: `held` sorts before it.
  Sim from_post(&log, "project:p");
  from_post.FeedFindTail();
  from_post.Connect(std::to_string(quick));
  from_post.RunUntilLive();
  EXPECT_TRUE(from_post.Delivered().empty());
}

TEST(Cursor, seam_live_events_during_the_replay_are_sent_once) {
  FakeLog log;
  int64_t start = log.Post("project:p");
  Sim s(&log, "project:p");
  s.FeedFindTail();
  int64_t r1 = log.Post("project:p"), r2 = log.Post("project:p");
  s.Connect(std::to_string(start));
  ASSERT_EQ(s.cursor->state(), Cursor::State::kAnchoring);
  s.FeedRead();  // r1, r2 arrive live while anchoring
  EXPECT_EQ(s.cursor->PendingCount(), 2u);
  s.AnswerAnchor();
  ASSERT_EQ(s.cursor->state(), Cursor::State::kReading);
  int64_t l1 = log.Post("project:p");
  s.FeedRead();  // l1 arrives live while the read is in flight…
  int64_t l2 = log.Post("project:p");  // …and l2 is committed before its snapshot, not yet fanned out
  s.AnswerRead();  // the read sees r1, r2, l1, l2
  EXPECT_EQ(s.cursor->state(), Cursor::State::kLive);
  s.FeedRead();  // l2 arrives live after the seam
  int64_t l3 = log.Post("project:p");
  s.FeedRead();
  EXPECT_EQ(s.Delivered(), (std::vector<int64_t>{r1, r2, l1, l2, l3}));
}

TEST(Cursor, seam_event_newer_than_the_replay_snapshot_comes_from_the_buffer) {
  FakeLog log;
  int64_t start = log.Post("project:p");
  Sim s(&log, "project:p");
  s.FeedFindTail();
  int64_t r1 = log.Post("project:p");
  s.Connect(std::to_string(start));
  s.AnswerAnchor();
  // Answer the read from a snapshot taken now, then commit and fan out l1 before it is handled.
  auto [after, limit] = *s.read_query;
  s.read_query.reset();
  std::vector<ReplayRow> rows;
  for (const auto& e : log.Readable())
    if (e.key.position > after) rows.push_back({e.key, MakeEv(e)});
  int64_t l1 = log.Post("project:p");
  s.FeedRead();
  s.cursor->OnReplayRows(Cursor::ReadStatus::kOk, rows);
  EXPECT_EQ(s.Delivered(), (std::vector<int64_t>{r1, l1}));
  (void)limit;
}

TEST(Cursor, replay_in_batches_when_the_log_holds_more_than_one_read) {
  FakeLog log;
  int64_t start = log.Post("project:p");
  for (int i = 0; i < 50; i++) log.Post(i % 5 == 0 ? "project:other" : "project:p");
  Sim s(&log, "project:p", {1 << 20, 16, 10000});
  s.FeedFindTail();
  s.Connect(std::to_string(start));
  s.RunUntilLive();
  std::vector<int64_t> want;
  for (const auto& e : log.Readable())
    if (e.channel == "project:p" && e.key.position > start) want.push_back(e.key.position);
  EXPECT_EQ(s.Delivered(), want);
}

TEST(Cursor, buffer_overflow_during_replay_costs_one_more_round_not_an_event) {
  FakeLog log;
  int64_t start = log.Post("project:p");
  Sim s(&log, "project:p", {4096, 1000, 10000});
  s.pad = 200;
  s.FeedFindTail();
  s.Connect(std::to_string(start));
  s.AnswerAnchor();
  // While the read is in flight, far more live traffic than the buffer holds.
  for (int i = 0; i < 60; i++) log.Post("project:p");
  s.FeedRead();
  EXPECT_EQ(s.cursor->PendingCount(), 0u) << "the buffer was given up";
  s.RunUntilLive();
  int64_t tail = log.Post("project:p");
  s.FeedRead();
  EXPECT_EQ(s.Delivered(), Range(start + 1, tail));
}

TEST(Cursor, lagging_live_client_catches_up_from_the_log_after_draining) {
  FakeLog log;
  Sim s(&log, "project:p", {2048, 1000, 10000});
  s.pad = 300;
  s.FeedFindTail();
  s.Connect("");
  // The client stops reading: the queue passes the limit, then more events arrive.
  for (int i = 0; i < 20; i++) {
    log.Post("project:p");
    s.FeedRead();
  }
  EXPECT_EQ(s.cursor->state(), Cursor::State::kDraining);
  EXPECT_TRUE(s.drain_tick);
  size_t sent_before = s.Delivered().size();
  EXPECT_LT(sent_before, 20u);
  s.RunUntilLive();  // the client drains; the rest comes from the log
  int64_t last = log.Post("project:p");
  s.FeedRead();
  EXPECT_EQ(s.Delivered(), Range(1, last));
}

TEST(Cursor, queue_full_in_the_middle_of_a_replay_batch_rereads_the_rest) {
  FakeLog log;
  int64_t start = log.Post("project:p");
  for (int i = 0; i < 30; i++) log.Post("project:p");
  Sim s(&log, "project:p", {4000, 1000, 10000});
  s.pad = 300;
  s.FeedFindTail();
  s.Connect(std::to_string(start));
  s.AnswerAnchor();
  s.AnswerRead();  // stops when the queue is full
  EXPECT_EQ(s.cursor->state(), Cursor::State::kDraining);
  s.RunUntilLive();
  EXPECT_EQ(s.Delivered(), Range(start + 1, start + 30));
}

TEST(Cursor, client_that_never_drains_is_dropped_after_the_stall_timeout) {
  FakeLog log;
  Sim s(&log, "project:p", {1024, 1000, 500});
  s.pad = 300;
  s.FeedFindTail();
  s.Connect("");
  for (int i = 0; i < 10; i++) {
    log.Post("project:p");
    s.FeedRead();
  }
  ASSERT_EQ(s.cursor->state(), Cursor::State::kDraining);
  s.drain_tick = false;
  s.now += 400;
  s.cursor->OnDrainTick();
  EXPECT_FALSE(s.dropped);
  s.now += 200;
  s.cursor->OnDrainTick();
  EXPECT_TRUE(s.dropped);
  EXPECT_EQ(s.cursor->state(), Cursor::State::kDone);
  size_t frames = s.frames.size();
  log.Post("project:p");
  s.FeedRead();
  EXPECT_EQ(s.frames.size(), frames) << "nothing after the drop";
  // It resumes from what it last received without loss.
  Sim again(&log, "project:p");
  again.FeedFindTail();
  again.Connect(s.LastId());
  again.RunUntilLive();
  auto all = s.Delivered();
  for (int64_t p : again.Delivered()) all.push_back(p);
  EXPECT_EQ(all, Range(1, 11));
}

TEST(Cursor, unknown_position_resets_with_the_feed_id_and_continues_live) {
  FakeLog log;
  log.Post("project:p");
  log.Post("project:p");
  Sim s(&log, "project:p");
  s.FeedFindTail();
  EXPECT_EQ(s.Connect("999"), "999");
  s.AnswerAnchor();
  ASSERT_TRUE(s.Sent("reset"));
  EXPECT_NE(s.frames.back().find("id: 2\nevent: reset\n"), std::string::npos) << s.frames.back();
  EXPECT_NE(s.frames.back().find("\"lastEventId\":\"999\""), std::string::npos);
  EXPECT_EQ(s.cursor->state(), Cursor::State::kLive);
  int64_t a = log.Post("project:p");
  s.FeedRead();
  EXPECT_EQ(s.Delivered(), (std::vector<int64_t>{a}));
  // Leaving right after the reset: its id resumes without loss.
  int64_t b = log.Post("project:p");
  Sim again(&log, "project:p");
  again.FeedFindTail();
  again.Connect("2");
  again.RunUntilLive();
  EXPECT_EQ(again.Delivered(), (std::vector<int64_t>{a, b}));
}

TEST(Cursor, not_a_position_resets_at_once_and_the_connected_frame_has_no_id) {
  FakeLog log;
  Sim s(&log, "project:p");
  s.FeedFindTail();
  EXPECT_EQ(s.Connect("abc"), "");
  EXPECT_FALSE(s.anchor_query.has_value());
  ASSERT_TRUE(s.Sent("reset"));
  EXPECT_NE(s.frames.back().find("id: 0\nevent: reset\n"), std::string::npos) << "empty log: from the start";
  EXPECT_EQ(s.cursor->state(), Cursor::State::kLive);
  // Invalid UTF-8 in the id is replaced in the frame's JSON, never thrown.
  Sim bad(&log, "project:p");
  bad.FeedFindTail();
  bad.Connect("\xff\xfe");
  EXPECT_TRUE(bad.Sent("reset"));
}

TEST(Cursor, position_erased_during_the_replay_resets) {
  FakeLog log;
  int64_t start = log.Post("project:p");
  Sim s(&log, "project:p");
  s.FeedFindTail();
  s.Connect(std::to_string(start));
  s.AnswerAnchor();
  s.read_query.reset();
  s.cursor->OnReplayRows(Cursor::ReadStatus::kUnknownPosition, {});
  EXPECT_TRUE(s.Sent("reset"));
  EXPECT_EQ(s.cursor->state(), Cursor::State::kLive);
}

TEST(Cursor, failed_queries_close_the_stream_for_a_retry) {
  FakeLog log;
  log.Post("project:p");
  Sim a(&log, "project:p");
  a.FeedFindTail();
  a.Connect("1");
  a.anchor_query.reset();
  a.cursor->OnAnchor(false, false, 0);
  EXPECT_TRUE(a.closed);
  EXPECT_EQ(a.cursor->state(), Cursor::State::kDone);
  Sim b(&log, "project:p");
  b.FeedFindTail();
  b.Connect("0");
  b.read_query.reset();
  b.cursor->OnReplayRows(Cursor::ReadStatus::kFailed, {});
  EXPECT_TRUE(b.closed);
  EXPECT_FALSE(b.Sent("reset"));
}

TEST(Cursor, topics_filter_what_is_sent_but_the_cursor_moves_past_it) {
  FakeLog log;
  int64_t start = log.Post("project:p");
  int64_t doc = log.Post("project:p", "doc");
  log.Post("project:p", "img");
  Sim s(&log, "project:p", {}, {"doc:*"});
  s.FeedFindTail();
  s.Connect(std::to_string(start));
  s.RunUntilLive();
  EXPECT_EQ(s.Delivered(), (std::vector<int64_t>{doc}));
  EXPECT_EQ(s.cursor->Position().position, 3) << "past the filtered event";
  log.Post("project:p", "img");
  int64_t doc2 = log.Post("project:p", "doc");
  s.FeedRead();
  EXPECT_EQ(s.Delivered(), (std::vector<int64_t>{doc, doc2}));
}

TEST(Cursor, replay_rows_of_other_channels_only_move_the_cursor) {
  FakeLog log;
  Sim s(&log, "project:p");
  s.FeedFindTail();
  s.Connect("0");
  ASSERT_TRUE(s.read_query.has_value());
  s.read_query.reset();
  // A pattern replay reads every channel; rows of others come without an event.
  s.cursor->OnReplayRows(Cursor::ReadStatus::kOk, {{{100, 1}, nullptr}, {{101, 2}, nullptr}});
  EXPECT_EQ(s.cursor->state(), Cursor::State::kLive);
  EXPECT_EQ(s.cursor->Position().position, 2);
  EXPECT_TRUE(s.Delivered().empty());
}

TEST(Cursor, parse_position_accepts_digits_only) {
  EXPECT_EQ(Cursor::ParsePosition("0"), 0);
  EXPECT_EQ(Cursor::ParsePosition("42"), 42);
  EXPECT_EQ(Cursor::ParsePosition("999999999999999999"), 999999999999999999LL);
  for (const char* bad : {"", "-1", "+1", "1.5", " 1", "1 ", "0x10", "1234567890123456789", "\xff"})
    EXPECT_EQ(Cursor::ParsePosition(bad), -1) << bad;
}
