// Bulk import and export of a state's registrants as CSV or NDJSON: the
// HTTP API (POST /api/v1/registrants:import, GET /api/v1/registrants:export)
// and the CLI (`amparo import`, `amparo export`) call these directly.
//
// Both stream: import reads the input once, validating each row with the
// same code as a single create (registrant_json.h) and inserting valid rows
// in batches of `batch_rows`, a transaction spanning a few batches
// (ImportOptions::commit_rows); export writes rows as it reads them.
// Import reads, validates and seals (encrypts, assigns ids) on a second
// thread while the calling thread writes; memory stays bounded by four
// batches (the one being read, two waiting, the one being written) and a
// 64 MB SQLite page cache for the import's connection, whatever the file
// size.
//
// CSV: RFC 4180 (quotes, doubled quotes, CRLF or LF, a UTF-8 BOM is
// tolerated), columns found by header name, in any order:
//   id, state, admin1, created_at, updated_at   (written by export; ignored on import)
//   external_ref, full_name, host_country, lat, lon, location_precision_m,
//   place.name, place.country, household_size,
//   household.members   ("18-59:PHL;5-17:PHL"), languages ("fil;en"),
//   contact.email, contact.phone, emergency_contact.name,
//   emergency_contact.phone, emergency_contact.email, travel_document_expiry,
//   vulnerabilities ("child;older_person"), consent.crisis_contact,
//   consent.share_aggregate_with_partners, consent.share_with_international_orgs
//   (true|false), consent.recorded_at, consent.notice_version, retention_until
// An empty cell is an absent field. A header naming any other column (an
// immigration status, say) refuses the whole file (kInvalidArgument naming it).
// NDJSON: one JSON object per line, as POSTed or as exported (the read-only
// fields are ignored); blank lines are skipped.
//
// Thread safety: stateless; the Db belongs to the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/db.h"
#include "common/gazetteer.h"
#include "common/status.h"
#include "services/gateway/gateway_store.h"
#include "services/gateway/registry_keys.h"

namespace amparo::gateway {

enum class RegistryFormat { kCsv, kNdjson };

// "csv" | "ndjson"; otherwise kInvalidArgument (field "format").
Result<RegistryFormat> ParseRegistryFormat(std::string_view text);
std::string_view RegistryFormatContentType(RegistryFormat format);  // text/csv, application/x-ndjson

// The CSV columns in export order.
const std::vector<std::string>& RegistryCsvColumns();

struct ImportError {
  int64_t row = 0;    // 1-based: CSV record after the header, NDJSON line
  std::string field;  // "" when the row as a whole is bad
  std::string reason;
};

struct ImportReport {
  int64_t imported = 0;
  int64_t rejected = 0;
  std::vector<ImportError> errors;  // the first ImportOptions::max_errors
};

struct ImportOptions {
  const Gazetteer* gazetteer = nullptr;  // null: rows with place.name are rejected
  int retention_days = 730;
  // Rows per hand-off batch and audit entry. A batch is written in
  // external_ref order, so the one index a file hits at random is walked
  // once per batch: 50k-row batches cost the writer ~4.7 us per row, 10k
  // ~5.6 (1M rows; docs/PERFORMANCE.md "Import"), for ~2 KB of memory per
  // row in flight (up to ~4 batches).
  int batch_rows = 50000;
  // A transaction spans batches until it holds commit_rows rows or has been
  // open max_transaction_ms (checked after each batch): fewer commits write
  // the randomly-hit external_ref index to the WAL fewer times. Other
  // writers of the database wait for it (busy timeout 5 s): keep it short.
  int64_t commit_rows = 50000;
  int64_t max_transaction_ms = 1000;
  // Parse, validate and seal on a second thread while the calling thread writes
  // (a bounded hand-off of 2 batches). false: everything on the caller's.
  bool parallel = true;
  size_t max_errors = 1000;                      // errors listed in the report (all are counted)
  size_t max_row_bytes = 1 << 20;                // a longer CSV record / NDJSON line is rejected
  std::string purpose = "registry-maintenance";  // audit purpose
  std::string source;                            // audit subject: file name or "upload"
  // Called after each committed batch with the rows read so far.
  std::function<void(int64_t rows_done)> progress;
};

// Imports into `token.state` (the token's role is not checked here: the
// caller decides). Audit: one "registrant.import" entry per batch, actor
// token.id, in the transaction that stores the batch's rows. A duplicate external_ref (in the
// database or earlier in the file) rejects that row. Errors: a bad CSV
// header (kInvalidArgument naming the column), an unreadable stream
// (kUnavailable), database errors (batches before stay imported; the
// message says how many rows were imported).
Result<ImportReport> ImportRegistrants(Db& db, const Token& token, std::istream& in, RegistryFormat format,
                                       const RegistryKeys& keys, const Clock& clock,
                                       const ImportOptions& options = {});

// Writes every registrant of `token.state`, decrypted, with a header for
// CSV, in one read transaction audited as "registrant.export" (actor
// token.id, `purpose`). Returns the number of rows. kUnavailable when the
// stream fails (the audit entry is then rolled back).
Result<int64_t> ExportRegistrants(Db& db, const Token& token, std::ostream& out, RegistryFormat format,
                                  const RegistryKeys& keys, const Clock& clock,
                                  std::string_view purpose = "registry-maintenance");

}  // namespace amparo::gateway
