// The pool's fair queue: clients take turns, one client's flood waits behind itself, and the
// queue is bounded in total and per client.
#include <gtest/gtest.h>

#include <string>

#include "feed/fair_queue.hpp"

using evstream::feed::FairQueue;

TEST(FairQueue, clients_take_turns_whatever_order_they_queued_in) {
  FairQueue<std::string> q(100, 100);
  for (int i = 0; i < 5; i++) ASSERT_TRUE(q.Push("flood", "f" + std::to_string(i)));
  ASSERT_TRUE(q.Push("alice", "a0"));
  ASSERT_TRUE(q.Push("bob", "b0"));
  ASSERT_TRUE(q.Push("alice", "a1"));
  std::vector<std::string> order;
  while (auto x = q.Pop()) order.push_back(*x);
  EXPECT_EQ(order, (std::vector<std::string>{"f0", "a0", "b0", "f1", "a1", "f2", "f3", "f4"}));
  EXPECT_TRUE(q.Empty());
}

TEST(FairQueue, a_flooding_client_is_refused_at_its_own_bound_others_still_queue) {
  FairQueue<int> q(10, 3);
  EXPECT_TRUE(q.Push("flood", 1));
  EXPECT_TRUE(q.Push("flood", 2));
  EXPECT_TRUE(q.Push("flood", 3));
  EXPECT_FALSE(q.Push("flood", 4));
  EXPECT_EQ(q.SizeFor("flood"), 3u);
  EXPECT_TRUE(q.Push("other", 5));
  EXPECT_EQ(q.Size(), 4u);
}

TEST(FairQueue, total_bound_holds) {
  FairQueue<int> q(4, 10);
  for (int i = 0; i < 4; i++) EXPECT_TRUE(q.Push("k" + std::to_string(i), i));
  EXPECT_FALSE(q.Push("new", 9));
  EXPECT_EQ(q.SizeFor("new"), 0u);
  EXPECT_EQ(q.Keys(), 4u);
  q.Pop();
  EXPECT_TRUE(q.Push("new", 9));
}

TEST(FairQueue, ineligible_keys_are_skipped_and_keep_their_turn) {
  FairQueue<std::string> q(100, 100);
  q.Push("replay|a", "r1");
  q.Push("replay|a", "r2");
  q.Push("api", "p1");
  auto not_replay = [](const std::string& k) { return k.rfind("replay|", 0) != 0; };
  EXPECT_EQ(*q.Pop(not_replay), "p1");
  EXPECT_FALSE(q.Pop(not_replay).has_value());
  EXPECT_EQ(*q.Pop(), "r1");
  EXPECT_EQ(q.Drain(), (std::vector<std::string>{"r2"}));
}
