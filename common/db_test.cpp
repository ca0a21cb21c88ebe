#include "common/db.h"

#include <gtest/gtest.h>

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

TEST(DbTest, UniqueViolationIsAlreadyExists) {
  testing::TempDir dir;
  auto db = Db::Open(dir / "a.db");
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES(1)").ok());
  auto ins = db->Prepare("INSERT INTO t VALUES(1)");
  EXPECT_EQ(ins->Run().code(), StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace amparo
