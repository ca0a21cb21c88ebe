#include "common/db.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "common/testing.h"

namespace amparo {
namespace {

TEST(DbTest, MigratesOnceAndPersists) {
  testing::TempDir dir;
  std::vector<std::string> migrations = {"CREATE TABLE t(x INTEGER)", "ALTER TABLE t ADD COLUMN y TEXT"};
  {
    auto db = Db::Open(dir / "a.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->Migrate(migrations).ok());
    ASSERT_TRUE(db->Exec("INSERT INTO t VALUES(1, 'one')").ok());
  }
  auto db = Db::Open(dir / "a.db");
  ASSERT_TRUE(db->Migrate(migrations).ok());  // already applied: no-op
  auto q = db->Prepare("SELECT y FROM t WHERE x = ?");
  q->Bind(1, 1);
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "one");
}

TEST(DbTest, ReusedStatementsComeBackResetWithoutBindingsAndSurviveTheirDb) {
  testing::TempDir dir;
  auto db = Db::Open(dir / "c.db");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1), (2), (3)").ok());
  {
    auto q = db->Prepare("SELECT ?1, (SELECT count(*) FROM t WHERE x >= ?1)");
    ASSERT_TRUE(q.ok());
    q->Bind(1, int64_t{2});
    ASSERT_TRUE(*q->Step());  // left mid-result on purpose
    EXPECT_EQ(q->ColumnInt(1), 2);
  }
  // The same text again: no binding and no half-read result carried over.
  auto again = db->Prepare("SELECT ?1, (SELECT count(*) FROM t WHERE x >= ?1)");
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(*again->Step());
  EXPECT_TRUE(again->ColumnIsNull(0));
  EXPECT_EQ(again->ColumnInt(1), 0);
  // Two at once of the same text are independent.
  auto other = db->Prepare("SELECT ?1, (SELECT count(*) FROM t WHERE x >= ?1)");
  other->Bind(1, int64_t{1});
  ASSERT_TRUE(*other->Step());
  EXPECT_EQ(other->ColumnInt(1), 3);
  // Many distinct texts: kept up to the bound, the rest finalized (ASan's
  // leak check and sqlite's close would notice anything left behind).
  for (int i = 0; i < 600; ++i) {
    auto q = db->Prepare("SELECT " + std::to_string(i));
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE(*q->Step());
    EXPECT_EQ(q->ColumnInt(0), i);
  }
  // A statement may outlive its connection (finalized, not cached).
  std::optional<Statement> late(std::move(*db->Prepare("SELECT 7")));
  db = Status(StatusCode::kUnavailable, "closed");
  late.reset();
}

TEST(DbTest, APageSizeIsSetOnlyWhileTheDatabaseIsEmptyAndStaysInWal) {
  testing::TempDir dir;
  {
    auto db = Db::Open(dir / "big.db");
    ASSERT_TRUE(db.ok());
    auto changed = db->SetPageSizeIfEmpty(16384);
    ASSERT_TRUE(changed.ok()) << changed.status().ToString();
    EXPECT_TRUE(*changed);
    EXPECT_FALSE(*db->SetPageSizeIfEmpty(16384));  // already so
    ASSERT_TRUE(db->Migrate({"CREATE TABLE t(x)"}).ok());
    EXPECT_FALSE(*db->SetPageSizeIfEmpty(8192));   // holds a table: kept
    EXPECT_EQ(db->SetPageSizeIfEmpty(1000).status().field(), "page_size");
  }
  auto db = Db::Open(dir / "big.db");
  auto q = db->Prepare("PRAGMA page_size");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnInt(0), 16384);
  auto mode = db->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(*mode->Step());
  EXPECT_EQ(mode->ColumnText(0), "wal");
}

TEST(DbTest, RefusesNewerSchema) {
  testing::TempDir dir;
  auto db = Db::Open(dir / "a.db");
  ASSERT_TRUE(db->Migrate({"CREATE TABLE t(x)", "CREATE TABLE u(x)"}).ok());
  Status st = db->Migrate({"CREATE TABLE t(x)"});
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
}

TEST(DbTest, TransactionRollsBackUnlessCommitted) {
  testing::TempDir dir;
  auto db = Db::Open(dir / "a.db");
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x)").ok());
  {
    auto tx = Transaction::Begin(*db);
    ASSERT_TRUE(db->Exec("INSERT INTO t VALUES(1)").ok());
  }
  auto q = db->Prepare("SELECT count(*) FROM t");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnInt(0), 0);
}

// Run() goes through the statement cache: the same savepoint statements run
// again and again with their effect each time, and an error still reads as
// SQLite's.
TEST(DbTest, RunRepeatsCachedStatementsWithTheirEffect) {
  testing::TempDir dir;
  auto db = Db::Open(dir / "a.db");
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x)").ok());
  auto tx = Transaction::Begin(*db);
  ASSERT_TRUE(tx.ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(db->Run("SAVEPOINT s").ok());
    ASSERT_TRUE(db->Exec("INSERT INTO t VALUES(" + std::to_string(i) + ")").ok());
    if (i == 1) {
      ASSERT_TRUE(db->Run("ROLLBACK TO s").ok());
    }
    ASSERT_TRUE(db->Run("RELEASE s").ok());
  }
  ASSERT_TRUE(tx->Commit().ok());
  auto q = db->Prepare("SELECT group_concat(x) FROM t");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "0,2");
  Status missing = db->Run("RELEASE never_opened");
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.ToString().find("no such savepoint"), std::string::npos) << missing.ToString();
}

TEST(DbTest, UniqueViolationIsAlreadyExists) {
  testing::TempDir dir;
  auto db = Db::Open(dir / "a.db");
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES(1)").ok());
  auto ins = db->Prepare("INSERT INTO t VALUES(1)");
  EXPECT_EQ(ins->Run().code(), StatusCode::kAlreadyExists);
}

TEST(DbTest, DaemonConnectionsKeepTemporaryJournalsInMemory) {
  testing::TempDir dir;
  auto plain = Db::Open(dir / "p.db");
  auto daemon = Db::Open(dir / "d.db", DaemonDbOptions());
  ASSERT_TRUE(plain.ok() && daemon.ok());
  auto read = [](Db& db) {
    auto q = db.Prepare("PRAGMA temp_store");
    EXPECT_TRUE(*q->Step());
    return q->ColumnInt(0);
  };
  EXPECT_EQ(read(*plain), 0);   // default
  EXPECT_EQ(read(*daemon), 2);  // MEMORY
}

TEST(DbTest, UnsyncedCommitsSkipTheFsyncOnlyWhileAliveAndKeepTheData) {
  testing::TempDir dir;
  auto synchronous = [](Db& db) {
    auto q = db.Prepare("PRAGMA synchronous");
    EXPECT_TRUE(*q->Step());
    return q->ColumnInt(0);
  };
  {
    auto db = Db::Open(dir / "full.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->full_sync());
    ASSERT_TRUE(db->Exec("CREATE TABLE t(x INTEGER)").ok());
    EXPECT_EQ(synchronous(*db), 2);  // FULL
    {
      UnsyncedCommits unsynced(*db);
      EXPECT_EQ(synchronous(*db), 1);  // NORMAL
      ASSERT_TRUE(db->Exec("INSERT INTO t VALUES (7)").ok());
    }
    EXPECT_EQ(synchronous(*db), 2);
  }
  auto again = Db::Open(dir / "full.db");
  auto q = again->Prepare("SELECT x FROM t");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnInt(0), 7);

  auto relaxed = Db::Open(dir / "normal.db", {.full_sync = false});
  ASSERT_TRUE(relaxed.ok());
  { UnsyncedCommits unsynced(*relaxed); }
  EXPECT_EQ(synchronous(*relaxed), 1);  // was NORMAL, stays NORMAL
}

}  // namespace
}  // namespace amparo
