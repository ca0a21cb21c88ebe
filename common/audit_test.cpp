#include "common/audit.h"

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>

#include "common/testing.h"

namespace amparo {
namespace {

AuditRecord Read(const std::string& subject) {
  return {"token:abc", "PHL", "registrant.read", subject, "registry-maintenance", ""};
}

class AuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Db::Open(dir_ / "audit.db", {.full_sync = false});
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    db_.emplace(std::move(*opened));
    ASSERT_TRUE(MigrateAudit(*db_).ok());
  }
  void AppendMany(int n) {
    for (int i = 0; i < n; ++i) {
      auto seq = AppendAudit(*db_, Read("r" + std::to_string(i)), clock_);
      ASSERT_TRUE(seq.ok()) << seq.status().ToString();
      clock_.Advance(1000);
    }
  }
  // Tampering that bypasses the application: drop the guard, edit, put it back.
  void Tamper(const std::string& sql) {
    ASSERT_TRUE(db_->Exec("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete").ok());
    ASSERT_TRUE(db_->Exec(sql).ok());
    ASSERT_TRUE(MigrateAudit(*db_).ok());
  }

  testing::TempDir dir_;
  std::optional<Db> db_;
  FakeClock clock_;
};

TEST_F(AuditTest, AppendsInSequenceAndVerifies) {
  auto empty = VerifyAudit(*db_);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->entries, 0);
  EXPECT_EQ(empty->head_hash, "");
  EXPECT_TRUE(empty->ok());

  EXPECT_EQ(*AppendAudit(*db_, Read("r1"), clock_), 1);
  EXPECT_EQ(*AppendAudit(*db_, Read("r2"), clock_), 2);
  {
    auto tx = Transaction::Begin(*db_);
    ASSERT_TRUE(tx.ok());
    EXPECT_EQ(*AppendAudit(*db_, Read("r3"), clock_), 3);
    ASSERT_TRUE(tx->Commit().ok());
  }
  auto report = VerifyAudit(*db_);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << report->problem;
  EXPECT_EQ(report->entries, 3);
  EXPECT_EQ(report->head_hash.size(), 64u);

  auto first = db_->Prepare("SELECT prev_hash, at_ms, subject FROM audit_log WHERE seq = 1");
  ASSERT_TRUE(*first->Step());
  EXPECT_EQ(first->ColumnText(0), std::string(64, '0'));
  EXPECT_EQ(first->ColumnInt(1), clock_.NowMs());
  EXPECT_EQ(first->ColumnText(2), "r1");
}

TEST_F(AuditTest, EntryRolledBackWithTheCallersTransactionLeavesNoTrace) {
  AppendMany(1);
  {
    auto tx = Transaction::Begin(*db_);
    EXPECT_EQ(*AppendAudit(*db_, Read("rolled-back"), clock_), 2);
  }  // no Commit: rolls back
  EXPECT_EQ(*AppendAudit(*db_, Read("r2"), clock_), 2);
  auto report = VerifyAudit(*db_);
  EXPECT_TRUE(report->ok()) << report->problem;
  EXPECT_EQ(report->entries, 2);
}

TEST_F(AuditTest, RejectsAnEntryWithoutActorOrAction) {
  AuditRecord r = Read("x");
  r.actor = "";
  EXPECT_EQ(AppendAudit(*db_, r, clock_).status().field(), "actor");
  r = Read("x");
  r.action = "";
  EXPECT_EQ(AppendAudit(*db_, r, clock_).status().field(), "action");
}

TEST_F(AuditTest, UpdateAndDeleteAreRefusedByTheTriggers) {
  AppendMany(2);
  Status update = db_->Exec("UPDATE audit_log SET detail = 'edited' WHERE seq = 1");
  EXPECT_FALSE(update.ok());
  EXPECT_NE(update.message().find("audit_log is append-only"), std::string::npos) << update.ToString();
  Status del = db_->Exec("DELETE FROM audit_log WHERE seq = 2");
  EXPECT_FALSE(del.ok());
  EXPECT_NE(del.message().find("audit_log is append-only"), std::string::npos) << del.ToString();
  auto report = VerifyAudit(*db_);
  EXPECT_EQ(report->entries, 2);
  EXPECT_TRUE(report->ok());
}

TEST_F(AuditTest, MigrateIsIdempotent) {
  AppendMany(2);
  ASSERT_TRUE(MigrateAudit(*db_).ok());
  EXPECT_EQ(VerifyAudit(*db_)->entries, 2);
}

TEST_F(AuditTest, EditedDetailIsNamedByItsSeq) {
  AppendMany(5);
  Tamper("UPDATE audit_log SET detail = 'nothing to see' WHERE seq = 3");
  auto report = VerifyAudit(*db_);
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->ok());
  EXPECT_EQ(report->first_bad_seq, 3);
  EXPECT_NE(report->problem.find("hash mismatch"), std::string::npos) << report->problem;
  EXPECT_EQ(report->entries, 5);
}

TEST_F(AuditTest, ForgedRowWithAValidHashBreaksTheNextLink) {
  AppendMany(4);
  // A forger who writes a self-consistent row 2 (correct prev_hash and hash
  // for its new content: here taken from a second log with the same first
  // entry) still cannot fix row 3 without rewriting the whole tail.
  {
    auto other = Db::Open(dir_ / "other.db", {.full_sync = false});
    ASSERT_TRUE(MigrateAudit(*other).ok());
    FakeClock other_clock;
    ASSERT_TRUE(AppendAudit(*other, Read("r0"), other_clock).ok());
    other_clock.Advance(1000);
    AuditRecord forged = Read("r1");
    forged.actor = "someone-else";
    ASSERT_TRUE(AppendAudit(*other, forged, other_clock).ok());
  }
  Tamper("ATTACH DATABASE '" + (dir_ / "other.db").string() +
         "' AS other;"
         "DELETE FROM audit_log WHERE seq = 2;"
         "INSERT INTO audit_log SELECT * FROM other.audit_log WHERE seq = 2;"
         "DETACH DATABASE other");
  auto actor = db_->Prepare("SELECT actor FROM audit_log WHERE seq = 2");
  ASSERT_TRUE(*actor->Step());
  ASSERT_EQ(actor->ColumnText(0), "someone-else");
  auto report = VerifyAudit(*db_);
  EXPECT_EQ(report->first_bad_seq, 3);
  EXPECT_NE(report->problem.find("broken link"), std::string::npos) << report->problem;
}

TEST_F(AuditTest, DeletedMiddleRowIsAGap) {
  AppendMany(5);
  Tamper("DELETE FROM audit_log WHERE seq = 3");
  auto report = VerifyAudit(*db_);
  EXPECT_EQ(report->first_bad_seq, 4);
  EXPECT_NE(report->problem.find("gap in seq: expected 3, found 4"), std::string::npos) << report->problem;
}

TEST_F(AuditTest, DeletedAndRenumberedRowIsABrokenLink) {
  AppendMany(5);
  Tamper("DELETE FROM audit_log WHERE seq = 3; UPDATE audit_log SET seq = seq - 1 WHERE seq > 3");
  auto report = VerifyAudit(*db_);
  EXPECT_EQ(report->first_bad_seq, 3);
  EXPECT_NE(report->problem.find("broken link"), std::string::npos) << report->problem;
}

// The chain alone cannot show truncation: the shorter chain is valid. An
// external anchor (the "audit head" logged by the owning daemon) can.
TEST_F(AuditTest, TruncationNeedsTheRememberedHead) {
  AppendMany(5);
  std::string remembered_head = VerifyAudit(*db_)->head_hash;
  Tamper("DELETE FROM audit_log WHERE seq = 5");
  auto report = VerifyAudit(*db_);
  EXPECT_TRUE(report->ok());  // internally consistent
  EXPECT_EQ(report->entries, 4);
  EXPECT_NE(report->head_hash, remembered_head);  // but the anchor shows it
}

TEST_F(AuditTest, TenThousandAppendsAndVerify) {
  auto start = std::chrono::steady_clock::now();
  {
    auto tx = Transaction::Begin(*db_);
    ASSERT_TRUE(tx.ok());
    for (int i = 0; i < 10'000; ++i)
      ASSERT_TRUE(AppendAudit(*db_, Read("r" + std::to_string(i)), clock_).ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  auto appended = std::chrono::steady_clock::now();
  auto report = VerifyAudit(*db_);
  auto verified = std::chrono::steady_clock::now();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << report->problem;
  EXPECT_EQ(report->entries, 10'000);
  using ms = std::chrono::duration<double, std::milli>;
  std::cout << "[ measure  ] audit: 10000 appends in one transaction " << ms(appended - start).count()
            << " ms, verify " << ms(verified - appended).count() << " ms\n";
}

}  // namespace
}  // namespace amparo
