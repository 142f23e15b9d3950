// PgPool without a database: a query fails asynchronously, exactly once, and never after Close().
// Regression for a fuzzing finding (tests/fuzz/presence_fuzz.cpp, stack-use-after-scope): a
// report deferred while the database was down ran on the next loop iteration, after Close() and
// after its owner (Presence) was gone, and wrote into the freed object.
#include <gtest/gtest.h>
#include <uv.h>

#include <memory>
#include <string>

#include "feed/pool.hpp"

namespace feed = evstream::feed;

namespace {
struct Loop {
  uv_loop_t loop;
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop), 0) << "a handle outlived the pool";
  }
};
}  // namespace

TEST(PgPool, a_query_while_the_database_is_down_fails_on_the_next_iteration_not_synchronously) {
  Loop l;
  feed::PgPool pool(&l.loop, "", 0);
  int calls = 0;
  std::string error;
  pool.Query("SELECT 1", {}, [&](feed::QueryResult& r) { calls++; error = r.error; });
  EXPECT_EQ(calls, 0);
  uv_run(&l.loop, UV_RUN_NOWAIT);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(error, "database unavailable");
  pool.Close();
  uv_run(&l.loop, UV_RUN_DEFAULT);
  EXPECT_EQ(calls, 1);
}

TEST(PgPool, close_reports_deferred_errors_itself_and_none_runs_after_it) {
  Loop l;
  auto owner_alive = std::make_shared<bool>(true);
  int calls = 0, after_close = 0;
  bool closed = false;
  {
    feed::PgPool pool(&l.loop, "", 0);
    for (int i = 0; i < 3; i++)
      pool.Query("SELECT 1", {}, [&, owner_alive](feed::QueryResult& r) {
        calls++;
        if (closed) after_close++;
        EXPECT_EQ(r.error, "shutting down");
        EXPECT_TRUE(*owner_alive);
      });
    pool.Close();
    closed = true;
    *owner_alive = false;  // the owner goes away once Close() has returned
  }
  uv_run(&l.loop, UV_RUN_DEFAULT);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(after_close, 0);
}

TEST(PgPool, a_pool_destroyed_without_close_frees_its_pending_reports) {
  Loop l;
  int calls = 0;
  {
    feed::PgPool pool(&l.loop, "", 0);
    pool.Query("SELECT 1", {}, [&](feed::QueryResult&) { calls++; });
  }
  uv_run(&l.loop, UV_RUN_DEFAULT);
  EXPECT_EQ(calls, 0);
}
