// PgConnection's prepared statements, against the real PostgreSQL `make test` starts (libpq's
// PG* environment; skipped when PGDATABASE is not set, e.g. ctest run by hand without a cluster).
// Send prepares a statement on its first use on a connection and runs it prepared afterwards; the
// first kMaxStatements distinct statements are kept, later ones run unnamed; a statement that
// fails to prepare is reported and not kept; a statement whose result type changed, or that the
// server no longer has, is reported once and prepared again; a new connection prepares again.
#include <gtest/gtest.h>
#include <uv.h>

#include <cstdlib>
#include <string>

#include "feed/pg.hpp"

namespace feed = evstream::feed;

namespace {

class PgStatements : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::getenv("PGDATABASE")) GTEST_SKIP() << "no database (PGDATABASE unset)";
    uv_loop_init(&loop_);
    conn_ = std::make_unique<feed::PgConnection>(&loop_, "", "test");
    WaitConnected();
  }
  void TearDown() override {
    if (!conn_) return;
    conn_->Close();
    conn_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  void WaitConnected() {
    bool connected = false;
    conn_->on_connected = [&] { connected = true; };
    if (conn_->state() == feed::PgConnection::State::Disconnected) conn_->Start();
    while (!connected) ASSERT_NE(uv_run(&loop_, UV_RUN_ONCE), 0) << "the loop ran dry before connecting";
    conn_->on_connected = nullptr;
  }
  // Sends `sql` and runs the loop until its callback has run (exactly once).
  feed::QueryResult Run(const std::string& sql, const feed::Params& params = {}) {
    feed::QueryResult out;
    int calls = 0;
    EXPECT_TRUE(conn_->Send(sql, params, [&](feed::QueryResult& r) {
      calls++;
      out.res = std::move(r.res);
      out.error = r.error;
      out.sqlstate = r.sqlstate;
    }));
    while (calls == 0) EXPECT_NE(uv_run(&loop_, UV_RUN_ONCE), 0);
    uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_EQ(calls, 1);
    return out;
  }
  int64_t Kept() {  // statements prepared on this connection by Send (this query included)
    auto r = Run("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'evstream_s%'");
    EXPECT_TRUE(r.ok()) << r.error;
    return r.ok() ? r.Int64(0, 0) : -1;
  }

  uv_loop_t loop_;
  std::unique_ptr<feed::PgConnection> conn_;
};

TEST_F(PgStatements, a_repeated_statement_is_prepared_once_and_runs_with_each_calls_parameters) {
  auto a = Run("SELECT $1::int + 1", {"1"});
  ASSERT_TRUE(a.ok()) << a.error;
  EXPECT_EQ(a.Int64(0, 0), 2);
  auto b = Run("SELECT $1::int + 1", {"41"});
  ASSERT_TRUE(b.ok()) << b.error;
  EXPECT_EQ(b.Int64(0, 0), 42);
  auto same = Run("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int + 1'");
  ASSERT_TRUE(same.ok()) << same.error;
  EXPECT_EQ(same.Int64(0, 0), 1);
  EXPECT_EQ(Kept(), 3);
}

TEST_F(PgStatements, a_statement_that_fails_to_prepare_reports_its_own_error_every_time_and_is_not_kept) {
  for (int i = 0; i < 2; i++) {
    auto r = Run("SELEC 1");
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.sqlstate, "42601");
  }
  auto missing = Run("SELECT $1::int FROM no_such_table_here", {"1"});
  EXPECT_EQ(missing.sqlstate, "42P01");
  auto ok = Run("SELECT 1");
  ASSERT_TRUE(ok.ok()) << ok.error;
  EXPECT_EQ(Kept(), 2);  // SELECT 1 and the count
  // Failed prepares use up nothing: as many as the bound, and the next statements are still kept.
  for (size_t i = 0; i < feed::PgConnection::kMaxStatements; i++)
    EXPECT_EQ(Run("SELECT $1::int FROM missing_" + std::to_string(i), {"1"}).sqlstate, "42P01");
  ASSERT_TRUE(Run("SELECT 2").ok());
  EXPECT_EQ(Kept(), 3);  // SELECT 1, the count, SELECT 2
}

TEST_F(PgStatements, beyond_the_bound_statements_run_unnamed_and_still_answer) {
  size_t n = feed::PgConnection::kMaxStatements + 8;
  for (size_t i = 0; i < n; i++) {
    auto r = Run("SELECT $1::int + " + std::to_string(i), {"1"});
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.Int64(0, 0), static_cast<int64_t>(1 + i));
  }
  EXPECT_EQ(Kept(), static_cast<int64_t>(feed::PgConnection::kMaxStatements));
}

TEST_F(PgStatements, a_changed_result_type_fails_once_then_the_statement_is_prepared_again) {
  ASSERT_TRUE(Run("CREATE TEMP TABLE t (a int)").ok());
  auto before = Run("SELECT * FROM t");
  ASSERT_TRUE(before.ok()) << before.error;
  EXPECT_EQ(before.columns(), 1);
  ASSERT_TRUE(Run("ALTER TABLE t ADD COLUMN b int").ok());
  auto changed = Run("SELECT * FROM t");
  EXPECT_EQ(changed.sqlstate, "0A000") << changed.error;
  auto again = Run("SELECT * FROM t");
  ASSERT_TRUE(again.ok()) << again.error;
  EXPECT_EQ(again.columns(), 2);
}

TEST_F(PgStatements, a_statement_the_server_dropped_fails_once_then_is_prepared_again) {
  ASSERT_TRUE(Run("SELECT $1::int * 2", {"2"}).ok());
  ASSERT_TRUE(Run("DEALLOCATE ALL").ok());  // as DISCARD ALL or a transaction-mode pooler would
  auto gone = Run("SELECT $1::int * 2", {"3"});
  EXPECT_EQ(gone.sqlstate, "26000") << gone.error;
  auto again = Run("SELECT $1::int * 2", {"4"});
  ASSERT_TRUE(again.ok()) << again.error;
  EXPECT_EQ(again.Int64(0, 0), 8);
}

TEST_F(PgStatements, a_new_connection_prepares_again) {
  auto first = Run("SELECT pg_backend_pid() + $1::int", {"0"});
  ASSERT_TRUE(first.ok()) << first.error;
  conn_->Reset("test: reconnect");
  WaitConnected();
  auto second = Run("SELECT pg_backend_pid() + $1::int", {"0"});
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_NE(first.Int64(0, 0), second.Int64(0, 0));
  EXPECT_EQ(Kept(), 2);
}

}  // namespace
