#include "common/audit.h"

#include <sqlite3.h>

#include <optional>
#include <string_view>

#include "common/crypto.h"

namespace amparo {
namespace {

constexpr std::string_view kGenesisHash = "0000000000000000000000000000000000000000000000000000000000000000";

// Every field is length-prefixed ("<decimal length>:<bytes>;", a netstring
// variant) so no two different entries encode to the same bytes: a plain join
// would let "ab"+"c" collide with "a"+"bc". The version tag lets a future
// encoding coexist with old entries.
void AppendField(std::string& out, std::string_view field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
  out += ';';
}

std::string EntryHash(std::string_view prev_hash, int64_t seq, int64_t at_ms, const AuditRecord& r) {
  std::string canonical = "amparo-audit-v1;";
  AppendField(canonical, prev_hash);
  AppendField(canonical, std::to_string(seq));
  AppendField(canonical, std::to_string(at_ms));
  AppendField(canonical, r.actor);
  AppendField(canonical, r.state);
  AppendField(canonical, r.action);
  AppendField(canonical, r.subject);
  AppendField(canonical, r.purpose);
  AppendField(canonical, r.detail);
  return Sha256Hex(canonical);
}

Result<int64_t> AppendInCurrentTransaction(Db& db, const AuditRecord& record, const Clock& clock) {
  auto last = db.Prepare("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1");
  if (!last.ok()) return last.status();
  auto has_last = last->Step();
  if (!has_last.ok()) return has_last.status();
  int64_t seq = 1;
  std::string prev_hash(kGenesisHash);
  if (*has_last) {
    seq = last->ColumnInt(0) + 1;
    prev_hash = last->ColumnText(1);
  }
  int64_t at_ms = clock.NowMs();
  std::string hash = EntryHash(prev_hash, seq, at_ms, record);
  auto insert = db.Prepare(
      "INSERT INTO audit_log(seq, at_ms, actor, state, action, subject, purpose, detail, prev_hash, hash)"
      " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, seq)
      .Bind(2, at_ms)
      .Bind(3, record.actor)
      .Bind(4, record.state)
      .Bind(5, record.action)
      .Bind(6, record.subject)
      .Bind(7, record.purpose)
      .Bind(8, record.detail)
      .Bind(9, prev_hash)
      .Bind(10, hash);
  AMPARO_RETURN_IF_ERROR(insert->Run());
  return seq;
}

}  // namespace

Status MigrateAudit(Db& db) {
  // Not a numbered Db::Migrate step: the audit table lives inside each owning
  // daemon's database, whose user_version belongs to that daemon's own list.
  // seq is assigned explicitly (not AUTOINCREMENT) so it is part of the hash
  // and a gap is visible.
  return db.Exec(R"sql(
    CREATE TABLE IF NOT EXISTS audit_log(
      seq INTEGER PRIMARY KEY,
      at_ms INTEGER NOT NULL,
      actor TEXT NOT NULL,
      state TEXT NOT NULL,
      action TEXT NOT NULL,
      subject TEXT NOT NULL,
      purpose TEXT NOT NULL,
      detail TEXT NOT NULL,
      prev_hash TEXT NOT NULL,
      hash TEXT NOT NULL);
    CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
      BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
      BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
  )sql");
}

Result<int64_t> AppendAudit(Db& db, const AuditRecord& record, const Clock& clock) {
  if (record.actor.empty()) return InvalidArgument("audit entry needs an actor", "actor");
  if (record.action.empty()) return InvalidArgument("audit entry needs an action", "action");
  // Reading the head and inserting must be atomic against other writers, or
  // two entries would chain to the same predecessor. Inside the caller's
  // transaction (BEGIN IMMEDIATE holds the write lock) that is given; a caller
  // outside one gets a transaction of its own.
  if (sqlite3_get_autocommit(db.raw()) == 0) return AppendInCurrentTransaction(db, record, clock);
  auto tx = Transaction::Begin(db);
  if (!tx.ok()) return tx.status();
  auto seq = AppendInCurrentTransaction(db, record, clock);
  if (!seq.ok()) return seq.status();
  AMPARO_RETURN_IF_ERROR(tx->Commit());
  return seq;
}

Result<AuditVerifyReport> VerifyAudit(Db& db) {
  auto rows = db.Prepare(
      "SELECT seq, at_ms, actor, state, action, subject, purpose, detail, prev_hash, hash"
      " FROM audit_log ORDER BY seq");
  if (!rows.ok()) return rows.status();
  AuditVerifyReport report;
  std::string prev_hash(kGenesisHash);
  int64_t expected_seq = 1;
  auto flag = [&report](int64_t seq, std::string problem) {
    if (report.first_bad_seq != 0) return;
    report.first_bad_seq = seq;
    report.problem = std::move(problem);
  };
  // Keeps walking after the first problem so `entries` and `head_hash`
  // describe the whole table; only the first problem is reported because
  // everything after a break is unverifiable anyway.
  while (true) {
    auto has_row = rows->Step();
    if (!has_row.ok()) return has_row.status();
    if (!*has_row) break;
    int64_t seq = rows->ColumnInt(0);
    AuditRecord r{rows->ColumnText(2), rows->ColumnText(3), rows->ColumnText(4),
                  rows->ColumnText(5), rows->ColumnText(6), rows->ColumnText(7)};
    std::string stored_prev = rows->ColumnText(8);
    std::string stored_hash = rows->ColumnText(9);
    ++report.entries;
    if (seq != expected_seq) {
      flag(seq, "gap in seq: expected " + std::to_string(expected_seq) + ", found " + std::to_string(seq));
    } else if (stored_prev != prev_hash) {
      flag(seq, "broken link: prev_hash does not match the hash of entry " + std::to_string(seq - 1));
    } else if (EntryHash(stored_prev, seq, rows->ColumnInt(1), r) != stored_hash) {
      flag(seq, "hash mismatch: the entry's content was changed after it was written");
    }
    prev_hash = stored_hash;
    expected_seq = seq + 1;
    report.head_hash = stored_hash;
  }
  return report;
}

}  // namespace amparo
