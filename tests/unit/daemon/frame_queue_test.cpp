#include "http/frame_queue.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <random>

using evstream::http::Frame;
using evstream::http::FrameQueue;

namespace {
Frame F(int i) { return std::make_shared<const std::string>(std::to_string(i)); }
}  // namespace

TEST(FrameQueue, keeps_fifo_order_and_shares_frames) {
  FrameQueue q;
  EXPECT_TRUE(q.empty());
  Frame a = F(1);
  q.push_back(a);
  q.push_back(F(2));
  EXPECT_EQ(a.use_count(), 2);  // the queue holds the same frame, not a copy
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(*q.front(), "1");
  q.pop_front();
  EXPECT_EQ(a.use_count(), 1);  // released as soon as it leaves the queue
  EXPECT_EQ(*q.front(), "2");
  q.pop_front();
  EXPECT_TRUE(q.empty());
}

TEST(FrameQueue, behaves_as_a_deque_under_random_pushes_pops_and_clears) {
  FrameQueue q;
  std::deque<int> ref;
  std::mt19937 rng(15);
  int next = 0;
  for (int step = 0; step < 200000; step++) {
    unsigned op = rng() % 100;
    if (op < 55) {
      q.push_back(F(next));
      ref.push_back(next++);
    } else if (op < 99) {
      if (!ref.empty()) {
        ASSERT_EQ(*q.front(), std::to_string(ref.front()));
        q.pop_front();
        ref.pop_front();
      }
    } else {
      q.clear();
      ref.clear();
    }
    ASSERT_EQ(q.size(), ref.size());
    ASSERT_EQ(q.empty(), ref.empty());
  }
}

TEST(FrameQueue, a_steady_stream_does_not_grow_the_buffer) {
  FrameQueue q;
  // One frame in, one out, with a backlog of 3: the consumed front is reused.
  for (int i = 0; i < 3; i++) q.push_back(F(i));
  for (int i = 3; i < 100000; i++) {
    q.push_back(F(i));
    ASSERT_EQ(*q.front(), std::to_string(i - 3));
    q.pop_front();
  }
  EXPECT_EQ(q.size(), 3u);
  EXPECT_LE(q.capacity(), 8u);
}
