// core::Mailbox (tasks between event loops, --threads) and hub::Fanout: real threads posting to a
// real libuv loop. Tasks of one producer run in the order posted, on the loop's thread; a closed
// mailbox refuses; the fan-out hands a batch to another loop's hub in log order and counts what
// that loop has not taken yet.
#include <gtest/gtest.h>
#include <uv.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/mailbox.hpp"
#include "hub/fanout.hpp"

namespace core = evstream::core;
namespace hub = evstream::hub;
namespace feed = evstream::feed;

namespace {
// A loop on a thread of its own with an open mailbox; Stop() closes the mailbox from inside the
// loop, which then ends.
struct LoopThread {
  core::Mailbox mailbox;
  std::thread thread;
  std::thread::id id;
  std::atomic<bool> ready{false};
  LoopThread() {
    thread = std::thread([this] {
      uv_loop_t loop;
      uv_loop_init(&loop);
      mailbox.Open(&loop);
      id = std::this_thread::get_id();
      ready = true;
      uv_run(&loop, UV_RUN_DEFAULT);
      uv_run(&loop, UV_RUN_DEFAULT);
      uv_loop_close(&loop);
    });
    while (!ready) std::this_thread::yield();
  }
  void Stop() {
    mailbox.Post([this] { mailbox.Close(); });
    thread.join();
  }
};
}  // namespace

TEST(Mailbox, tasks_from_many_threads_run_on_the_loop_in_each_producers_order) {
  LoopThread l;
  constexpr int kProducers = 4, kEach = 5000;
  std::vector<std::vector<int>> seen(kProducers);  // written on the loop's thread only
  std::atomic<int> wrong_thread{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; p++)
    producers.emplace_back([&, p] {
      for (int i = 0; i < kEach; i++)
        ASSERT_TRUE(l.mailbox.Post([&, p, i] {
          if (std::this_thread::get_id() != l.id) wrong_thread++;
          seen[p].push_back(i);
        }));
    });
  for (auto& t : producers) t.join();
  l.Stop();  // runs after every task posted before it
  EXPECT_EQ(wrong_thread.load(), 0);
  for (int p = 0; p < kProducers; p++) {
    ASSERT_EQ(seen[p].size(), static_cast<size_t>(kEach));
    for (int i = 0; i < kEach; i++) ASSERT_EQ(seen[p][i], i);
  }
}

TEST(Mailbox, a_closed_mailbox_refuses_and_runs_nothing_more) {
  LoopThread l;
  std::atomic<int> ran{0};
  l.Stop();
  EXPECT_FALSE(l.mailbox.Post([&] { ran++; }));
  EXPECT_EQ(ran.load(), 0);
}

TEST(Mailbox, run_on_runs_at_once_on_its_own_loop_or_without_one) {
  int ran = 0;
  EXPECT_TRUE(core::RunOn(nullptr, [&] { ran++; }));  // one loop: no mailbox at all
  EXPECT_EQ(ran, 1);
  LoopThread l;
  std::atomic<bool> inline_there{false};
  l.mailbox.Post([&] {
    int here = 0;
    core::RunOn(&l.mailbox, [&] { here++; });
    inline_there = here == 1;
  });
  l.Stop();
  EXPECT_TRUE(inline_there.load());
}

namespace {
struct Recorder : hub::Subscriber {
  evstream::auth::ChannelSet channels;
  std::vector<int64_t> positions;
  std::vector<int64_t> view_at;  // the loop's view when each event arrived
  hub::FeedView* view = nullptr;
  const evstream::auth::ChannelSet& Channels() const override { return channels; }
  void OnEvent(const feed::EventPtr& ev) override {
    positions.push_back(ev->key.position);
    view_at.push_back(view->Cursor().position);
  }
};

feed::EventPtr Event(int64_t position) {
  auto ev = std::make_shared<feed::Event>();
  ev->key = {static_cast<uint64_t>(position), position};
  ev->channel = "project:a";
  ev->frame = std::make_shared<const std::string>("data: x\n\n");
  return ev;
}
}  // namespace

TEST(Fanout, another_loop_gets_every_batch_in_order_with_its_view_moving_along) {
  LoopThread l;
  hub::Hub h;
  hub::FeedView view;
  Recorder r;
  r.channels.exact = {"project:a"};
  r.view = &view;
  std::atomic<bool> positioned{false};
  l.mailbox.Post([&] {
    h.Add(&r);
    view.on_positioned = [&] { positioned = true; };
  });
  hub::Fanout fanout;
  fanout.Add(&h, &view, &l.mailbox);
  fanout.Connected(true);
  fanout.Positioned({0, 0});
  int64_t next = 1;
  for (int batch = 0; batch < 50; batch++) {
    std::vector<feed::EventPtr> events;
    for (int i = 0; i < 20; i++) events.push_back(Event(next++));
    fanout.Events(std::move(events));
  }
  l.mailbox.Post([&] { h.Remove(&r); });
  l.Stop();
  EXPECT_EQ(fanout.Backlog(), 0);
  EXPECT_TRUE(positioned.load());
  ASSERT_EQ(r.positions.size(), 1000u);
  for (size_t i = 0; i < r.positions.size(); i++) {
    ASSERT_EQ(r.positions[i], static_cast<int64_t>(i + 1));
    ASSERT_EQ(r.view_at[i], r.positions[i]) << "the view is at the event being delivered";
  }
}
