// The outbox reader's cursor: ids are nextval order, not commit order. A row that commits after
// a higher id was read is still handed out (once), a gap closes only when the snapshot horizon
// has passed the transactions that could fill it, and the gaps kept stay bounded.
#include <gtest/gtest.h>

#include "realtime/outbox_cursor.hpp"

using evstream::realtime::OutboxCursor;

TEST(OutboxCursor, rows_in_order_are_handed_out_once) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  EXPECT_TRUE(c.Accept(11, 100));
  EXPECT_TRUE(c.Accept(12, 100));
  c.Finish(100, true, 12);
  EXPECT_FALSE(c.Accept(12, 100));
  EXPECT_FALSE(c.Accept(9, 100));
  EXPECT_EQ(c.after(), 12);
  EXPECT_EQ(c.gap_count(), 0u);
  EXPECT_EQ(c.Watermark(), 12);
}

TEST(OutboxCursor, late_commit_below_the_cursor_is_delivered_once) {
  OutboxCursor c;
  c.Anchor(0, {}, 50);
  // read 1 (next_xid 60): 1 and 3 committed, 2 still open
  EXPECT_TRUE(c.Accept(1, 60));
  EXPECT_TRUE(c.Accept(3, 60));
  c.Finish(55, true, 3);  // horizon 55 < 60: gap 2 stays open
  EXPECT_EQ(c.GapsLiteral(), "{2}");
  EXPECT_EQ(c.Watermark(), 1);
  // read 2: 2 committed meanwhile
  EXPECT_TRUE(c.Accept(2, 70));
  c.Finish(70, true, 3);
  EXPECT_FALSE(c.Accept(2, 70));
  EXPECT_EQ(c.gap_count(), 0u);
  EXPECT_EQ(c.Watermark(), 3);
}

TEST(OutboxCursor, a_gap_closes_only_when_the_horizon_passes_its_next_xid) {
  OutboxCursor c;
  c.Anchor(0, {}, 10);
  EXPECT_TRUE(c.Accept(5, 20));  // 1..4 missing at next_xid 20
  c.Finish(19, true, 5);
  EXPECT_EQ(c.gap_count(), 4u);
  c.Finish(20, true, 5);  // every transaction that could hold them has ended: rolled back
  EXPECT_EQ(c.gap_count(), 0u);
  EXPECT_FALSE(c.Accept(3, 30));  // and a closed gap is never delivered afterwards
}

TEST(OutboxCursor, a_read_cut_by_its_limit_closes_only_gaps_it_covered) {
  OutboxCursor c;
  c.Anchor(8, {{2, 5}, {7, 5}}, 5);
  EXPECT_TRUE(c.Accept(9, 6));
  EXPECT_TRUE(c.Accept(10, 6));
  c.Finish(100, false, 5);  // the read stopped at id 5: gap 7 was not covered
  EXPECT_EQ(c.GapsLiteral(), "{7}");
  c.Finish(100, true, 10);
  EXPECT_EQ(c.gap_count(), 0u);
}

TEST(OutboxCursor, gaps_are_bounded_and_the_oldest_given_up) {
  OutboxCursor c(3);
  c.Anchor(0, {}, 1);
  EXPECT_TRUE(c.Accept(10, 2));  // 1..9 missing: only 7, 8, 9 kept
  EXPECT_EQ(c.GapsLiteral(), "{7,8,9}");
  EXPECT_EQ(c.given_up(), 6u);
  EXPECT_TRUE(c.Accept(12, 3));  // 11 missing: 7 given up
  EXPECT_EQ(c.GapsLiteral(), "{8,9,11}");
  EXPECT_EQ(c.given_up(), 7u);
  EXPECT_FALSE(c.Accept(7, 3));
  EXPECT_TRUE(c.Accept(9, 3));
  EXPECT_EQ(c.Watermark(), 7);
}

// Own rows (the publisher's answer, after its commit) are handed out at once; whichever of the
// hand-off and a read sees an id first hands it out, never both.
TEST(OutboxCursor, own_rows_right_above_the_cursor_move_it_on_without_a_read) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  EXPECT_TRUE(c.AcceptOwn(11));
  EXPECT_TRUE(c.AcceptOwn(12));
  EXPECT_EQ(c.after(), 12);
  EXPECT_EQ(c.own_count(), 0u);
  EXPECT_FALSE(c.AcceptOwn(12));
  EXPECT_FALSE(c.Accept(12, 100));  // a read that still returns it skips it
  EXPECT_EQ(c.Watermark(), 12);
}

TEST(OutboxCursor, an_own_row_above_a_foreign_id_is_skipped_by_the_read_and_never_a_gap) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  EXPECT_TRUE(c.AcceptOwn(13));  // 11, 12: another writer's
  EXPECT_EQ(c.after(), 10);
  EXPECT_EQ(c.own_count(), 1u);
  EXPECT_TRUE(c.Accept(11, 100));
  EXPECT_FALSE(c.Accept(13, 100));  // handed out already
  EXPECT_EQ(c.GapsLiteral(), "{12}");
  EXPECT_TRUE(c.Accept(14, 100));
  EXPECT_EQ(c.GapsLiteral(), "{12}");  // 13 did not become a gap
  EXPECT_EQ(c.own_count(), 0u);
  EXPECT_TRUE(c.Accept(12, 110));
  EXPECT_EQ(c.gap_count(), 0u);
}

TEST(OutboxCursor, an_own_row_the_read_passed_before_its_commit_was_visible_is_handed_out_once) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  // the read's snapshot missed own row 11 (committing); it saw 12 (another writer's)
  EXPECT_TRUE(c.Accept(12, 100));
  EXPECT_EQ(c.GapsLiteral(), "{11}");
  EXPECT_TRUE(c.AcceptOwn(11));   // the publish answer arrives: the gap is handed out here
  EXPECT_EQ(c.gap_count(), 0u);
  EXPECT_FALSE(c.Accept(11, 100));  // and the next read skips it
  EXPECT_FALSE(c.AcceptOwn(11));
}

TEST(OutboxCursor, a_read_that_handed_out_an_own_row_first_wins) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  EXPECT_TRUE(c.Accept(11, 100));  // another writer's doorbell: the read sees the own row first
  EXPECT_FALSE(c.AcceptOwn(11));   // the answer arrives later: not again
}

TEST(OutboxCursor, own_rows_are_never_gaps_after_a_re_anchor) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  EXPECT_TRUE(c.AcceptOwn(15));
  EXPECT_TRUE(c.AcceptOwn(20));
  // reconnect: the tail (maybe taken before 15 was visible) lists 15 as missing
  c.Anchor(18, {{15, 0}, {16, 0}}, 200);
  EXPECT_EQ(c.GapsLiteral(), "{16}");
  EXPECT_EQ(c.own_count(), 1u);   // 20 is still ahead
  EXPECT_TRUE(c.Accept(19, 200));
  EXPECT_EQ(c.after(), 20);       // 19 read, then own 20 right above it
  EXPECT_FALSE(c.Accept(20, 200));
}

TEST(OutboxCursor, own_rows_ahead_of_the_reader_stay_bounded) {
  OutboxCursor c(3);
  c.Anchor(0, {}, 1);
  EXPECT_TRUE(c.AcceptOwn(2));
  EXPECT_TRUE(c.AcceptOwn(3));
  EXPECT_TRUE(c.AcceptOwn(4));
  EXPECT_FALSE(c.AcceptOwn(5));  // full: left to a read
  EXPECT_TRUE(c.Accept(1, 1));   // 1 read: 2..4 were own, the cursor moves over them
  EXPECT_EQ(c.after(), 4);
  EXPECT_TRUE(c.Accept(5, 1));   // the read hands out 5
}

// While the reader re-anchors (its connection was lost), own rows are still handed out; the new
// anchor's tail may have been taken before they were visible (listing them missing) or may end
// below them. Either way a read must not hand them out a second time.
TEST(OutboxCursor, an_own_row_right_above_the_cursor_while_re_anchoring_is_never_a_gap) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  c.Unanchor();                   // the outbox connection is lost
  EXPECT_TRUE(c.AcceptOwn(11));   // the answer arrives before the tail's result
  c.Anchor(12, {{11, 0}}, 200);   // the tail's snapshot: 12 committed, 11 not yet
  EXPECT_EQ(c.gap_count(), 0u);
  EXPECT_FALSE(c.Accept(11, 200));
  EXPECT_EQ(c.after(), 12);
}

TEST(OutboxCursor, an_old_gap_handed_out_while_re_anchoring_is_never_a_gap_again) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  EXPECT_TRUE(c.Accept(12, 100));  // 11 missing
  c.Unanchor();
  EXPECT_TRUE(c.AcceptOwn(11));
  c.Anchor(13, {{11, 0}}, 200);
  EXPECT_EQ(c.gap_count(), 0u);
  EXPECT_FALSE(c.Accept(11, 200));
}

TEST(OutboxCursor, an_own_row_above_a_tail_taken_before_it_is_not_read_again) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  c.Unanchor();
  EXPECT_TRUE(c.AcceptOwn(11));
  c.Anchor(10, {}, 200);           // the tail ended below 11
  EXPECT_FALSE(c.Accept(11, 200));
  EXPECT_EQ(c.after(), 11);
}

// A stream's own events must not overtake each other: after an answer is lost (its rows may have
// committed, ids unknown but below every later batch's) or an own row was refused, later answers
// are not handed out until reads have delivered the earlier rows.
TEST(OutboxCursor, after_a_lost_answer_own_rows_wait_for_a_read_begun_after_it) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  c.BeginRead();                  // a read in flight, its snapshot before batch 1's commit
  c.LostOwn();                    // batch 1 (11, 12) committed, its answer lost
  c.EndRead(true);                // that read saw nothing
  EXPECT_FALSE(c.AcceptOwn(13));  // batch 2's answer: not before 11 and 12
  EXPECT_TRUE(c.held());
  c.BeginRead();
  EXPECT_TRUE(c.Accept(11, 100));
  EXPECT_TRUE(c.Accept(12, 100));
  EXPECT_TRUE(c.Accept(13, 100));
  c.Finish(100, true, 13);
  c.EndRead(true);
  EXPECT_FALSE(c.held());
  EXPECT_TRUE(c.AcceptOwn(14));
}

TEST(OutboxCursor, a_read_cut_by_its_limit_does_not_end_the_hold) {
  OutboxCursor c;
  c.Anchor(10, {}, 100);
  c.LostOwn();
  c.BeginRead();
  EXPECT_TRUE(c.Accept(11, 100));
  c.EndRead(false);
  EXPECT_FALSE(c.AcceptOwn(20));
}

TEST(OutboxCursor, after_a_refused_own_row_later_ones_wait_until_it_was_read) {
  OutboxCursor c(2);
  c.Anchor(0, {}, 1);
  EXPECT_TRUE(c.AcceptOwn(2));
  EXPECT_TRUE(c.AcceptOwn(3));
  EXPECT_FALSE(c.AcceptOwn(4));  // full: left to a read
  c.BeginRead();
  EXPECT_TRUE(c.Accept(1, 1));   // a read whose snapshot predates 4: the cursor moves over 2, 3
  c.Finish(1, true, 3);
  c.EndRead(true);
  EXPECT_EQ(c.after(), 3);
  EXPECT_FALSE(c.AcceptOwn(5));  // not before 4
  c.BeginRead();
  EXPECT_TRUE(c.Accept(4, 1));
  EXPECT_TRUE(c.Accept(5, 1));
  c.Finish(1, true, 5);
  c.EndRead(true);
  EXPECT_TRUE(c.AcceptOwn(6));
}
