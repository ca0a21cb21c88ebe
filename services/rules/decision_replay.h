// Deterministic replay of amparo-rules' decision log (`amparo replay
// --deterministic`).
//
// The rules engine records every input it handled (input_log: envelopes,
// productive timer ticks, the policy text in force) with the time it used,
// and every alert notification it made (decisions). ReplayDecisionLog feeds
// that log, in order and at the recorded times (a FakeClock), into a new
// engine on an empty scratch database and compares the notifications it
// makes with the recorded ones: same count, same decision ids, equal alerts
// field by field.
//
// Registry changes are not in the log (it keeps nobody's location or flags):
// each crisis event is followed by the exposure the index gave for it (no
// row when it exposed nobody), which the replay uses instead of an index. The replay is exact for a database
// whose log starts with its life (created by this version or later).
//
// Reads `recorded_db` only (safe while amparo-rules runs: WAL readers do not
// block it). Not thread-safe; one call at a time per scratch directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "common/config.h"
#include "common/status.h"

namespace amparo::rules {

struct ReplayReport {
  uint64_t inputs = 0;           // input_log rows replayed
  uint64_t recorded = 0;         // notifications recorded in the log's database
  uint64_t replayed = 0;         // notifications the replay made
  // Empty when every notification matched; else the first mismatch, e.g.
  // "decision 3 (alert usgs:x/PHL/JPN revision 2): level: 3 -> 2".
  std::string first_difference;
  bool identical() const { return first_difference.empty() && recorded == replayed; }
};

// NOT_FOUND when `recorded_db` does not exist; INVALID_ARGUMENT when it has
// no decision log (not a rules database, or one from before issue 5).
Result<ReplayReport> ReplayDecisionLog(const std::filesystem::path& recorded_db, const RulesOptions& options,
                                       const std::filesystem::path& scratch_dir);

}  // namespace amparo::rules
