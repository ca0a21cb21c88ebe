// The audit log: an append-only, hash-chained record of every access to
// personal data (DESIGN.md guarantee 5, MICIC G8), kept in the database of
// the daemon that made the access (the gateway for the registry).
//
// Append-only is enforced twice: SQLite triggers refuse UPDATE and DELETE on
// the table, and each entry stores SHA-256(previous hash || canonical
// encoding of the entry), so an edit made by other means (a hex editor, a
// dropped trigger) breaks the chain and VerifyAudit() names the first bad
// entry. The chain cannot show that its newest entries were removed
// (truncation leaves a shorter, valid chain): that needs an external anchor.
// The owning daemon logs the head hash (log::Info "audit head") and an
// operator or a peer keeps it; comparing a remembered head with
// VerifyAudit().head_hash, or checking that the remembered hash is still in
// the table, detects truncation. This module keeps no global state for it.
//
// Hash of entry n: SHA-256 hex over a length-prefixed encoding of
// (prev_hash, seq, at_ms, actor, state, action, subject, purpose, detail);
// entry 1 chains to 64 zeros.
//
// Thread safety: functions are stateless; a Db belongs to one thread.
#pragma once

#include <cstdint>
#include <string>

#include "common/clock.h"
#include "common/db.h"
#include "common/status.h"

namespace amparo {

struct AuditRecord {
  std::string actor;    // who: token id, "cli:<user>", or "system:retention"
  std::string state;    // ISO3 whose data was touched ("" for none)
  std::string action;   // what: "registrant.read", "registrant.create", "registrant.update",
                        // "registrant.delete", "registrant.list", "registrant.export",
                        // "registrant.import", "registrant.purge", "token.create", ...
  std::string subject;  // which record: registrant id, file name, or "*"
  std::string purpose;  // why: "registry-maintenance", "crisis-response", "retention", ...
  std::string detail;   // optional free text (never personal data itself)
};

// Creates the audit table and its append-only triggers. Idempotent.
Status MigrateAudit(Db& db);

// Appends one entry; call inside the caller's transaction so the entry and
// the access it records commit together (outside one, the append runs in a
// transaction of its own). Returns the new entry's sequence (1, 2, ...).
// InvalidArgument when actor or action is empty.
Result<int64_t> AppendAudit(Db& db, const AuditRecord& record, const Clock& clock);

struct AuditVerifyReport {
  int64_t entries = 0;        // entries checked
  std::string head_hash;      // hex hash of the newest entry ("" when empty)
  int64_t first_bad_seq = 0;  // 0 when the chain is intact
  std::string problem;        // why the first bad entry is bad
  bool ok() const { return first_bad_seq == 0; }
};

// Recomputes the whole chain in seq order. A damaged chain is not an error
// status: the report names the first bad seq and why ("gap in seq", "broken
// link", "hash mismatch"). Note: editing entry n and recomputing its hash
// shows up as a broken link at n+1. Errors only for database failures.
Result<AuditVerifyReport> VerifyAudit(Db& db);

}  // namespace amparo
