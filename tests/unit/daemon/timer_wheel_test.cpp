#include "core/timer_wheel.hpp"

#include <gtest/gtest.h>

#include <vector>

using evstream::core::TimerWheel;

TEST(TimerWheel, fires_at_or_after_due_never_before) {
  TimerWheel w(100, 8, 1000);
  std::vector<int> fired;
  w.Add(1250, [&] { fired.push_back(1); });
  EXPECT_EQ(w.Advance(1100), 0u);
  EXPECT_EQ(w.Advance(1249), 0u);
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(w.Advance(1300), 1u);  // the first tick at or after 1250
  EXPECT_EQ(fired, std::vector<int>{1});
  EXPECT_TRUE(w.empty());
}

TEST(TimerWheel, an_entry_already_due_fires_on_the_next_advance) {
  TimerWheel w(100, 8, 1000);
  int n = 0;
  w.Add(500, [&] { n++; });
  w.Add(1000, [&] { n++; });
  EXPECT_EQ(w.Advance(1099), 0u);
  EXPECT_EQ(w.Advance(1100), 2u);
  EXPECT_EQ(n, 2);
}

TEST(TimerWheel, entries_more_than_one_revolution_away_wait_their_round) {
  TimerWheel w(10, 4, 0);  // one revolution = 40 ms
  std::vector<uint64_t> fired;
  for (uint64_t due : {15u, 55u, 95u, 1000u}) w.Add(due, [&fired, due] { fired.push_back(due); });
  for (uint64_t now = 0; now <= 1000; now += 10) {
    size_t before = fired.size();
    w.Advance(now);
    for (size_t i = before; i < fired.size(); i++) {
      EXPECT_GE(now, fired[i]);
      EXPECT_LT(now, fired[i] + 10);
    }
  }
  EXPECT_EQ(fired, (std::vector<uint64_t>{15, 55, 95, 1000}));
}

TEST(TimerWheel, a_long_jump_fires_everything_due_in_due_order) {
  TimerWheel w(10, 4, 0);
  std::vector<uint64_t> fired;
  for (uint64_t due : {300u, 20u, 170u, 5000u}) w.Add(due, [&fired, due] { fired.push_back(due); });
  EXPECT_EQ(w.Advance(1000), 3u);
  EXPECT_EQ(fired, (std::vector<uint64_t>{20, 170, 300}));
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(w.Advance(5000), 1u);
  EXPECT_TRUE(w.empty());
}

TEST(TimerWheel, cancelled_entries_never_fire_and_stale_ids_are_refused) {
  TimerWheel w(10, 16, 0);
  int n = 0;
  auto a = w.Add(50, [&] { n++; });
  auto b = w.Add(50, [&] { n += 10; });
  EXPECT_TRUE(w.Cancel(a));
  EXPECT_FALSE(w.Cancel(a));
  EXPECT_FALSE(w.Cancel(0));
  auto c = w.Add(60, [&] { n += 100; });  // reuses a's slot in the slab: a new id
  EXPECT_NE(a, c);
  EXPECT_FALSE(w.Cancel(a));
  w.Advance(100);
  EXPECT_EQ(n, 110);
  EXPECT_FALSE(w.Cancel(b));  // already fired
}

TEST(TimerWheel, a_callback_may_cancel_a_later_entry_of_the_same_advance_and_add_new_ones) {
  TimerWheel w(10, 8, 0);
  std::vector<int> fired;
  TimerWheel::Id second = 0;
  w.Add(20, [&] {
    fired.push_back(1);
    w.Cancel(second);
    w.Add(25, [&] { fired.push_back(3); });  // already past: the next Advance
  });
  second = w.Add(30, [&] { fired.push_back(2); });
  EXPECT_EQ(w.Advance(100), 1u);
  EXPECT_EQ(fired, std::vector<int>{1});
  EXPECT_EQ(w.size(), 1u);
  EXPECT_EQ(w.Advance(110), 1u);
  EXPECT_EQ(fired, (std::vector<int>{1, 3}));
}

TEST(TimerWheel, many_entries_reuse_the_slab) {
  TimerWheel w(10, 64, 0);
  int n = 0;
  std::vector<TimerWheel::Id> ids;
  for (int round = 0; round < 3; round++) {
    ids.clear();
    for (int i = 0; i < 10000; i++) ids.push_back(w.Add(static_cast<uint64_t>(round * 100000 + i), [&] { n++; }));
    for (size_t i = 0; i < ids.size(); i += 2) w.Cancel(ids[i]);
    w.Advance(static_cast<uint64_t>(round * 100000 + 20000));
    EXPECT_TRUE(w.empty());
  }
  EXPECT_EQ(n, 15000);
}

TEST(TimerWheel, a_throwing_callback_does_not_stop_the_others) {
  TimerWheel w(10, 8, 0);
  int n = 0;
  w.Add(10, [] { throw std::runtime_error("boom"); });
  w.Add(20, [&] { n++; });
  EXPECT_EQ(w.Advance(50), 2u);
  EXPECT_EQ(n, 1);
  EXPECT_TRUE(w.empty());
}
