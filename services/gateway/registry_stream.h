// The gateway's half of the registry resynchronisation (the ZeroMQ guide's
// Clone pattern; amparo-rules holds the other half in
// services/rules/registry_sync.h).
//
// Every registry write already enqueues one RegistryChange for peer "rules"
// in its own transaction, numbered by the registry-wide sequence
// (gateway_store.h). This file answers a SnapshotRequest from rules:
//  - probe_only: one RegistrySequenceMark with the current sequence;
//  - otherwise the whole registry's matching-relevant fields
//    (RegistrantLocation: no contact data, names or documents) as
//    SnapshotChunk messages of at most `chunk_size` registrants, the last
//    one final (with chunk_count and registrant_count).
// Both are written to the outbox for "rules" inside the caller's
// transaction (the link receiver's, BEGIN IMMEDIATE): the registry read and
// the sequence read see one consistent state, every change with a sequence
// up to the snapshot's is already in the outbox, and every later change
// lands after the chunks. Only one chunk is in memory at a time; the
// outbox holds the whole snapshot until rules acknowledges it (about 70
// bytes per registrant: 70 MB for 1M registrants). Writers on the HTTP
// thread wait (busy timeout) while a snapshot is written: a few seconds at
// 1M registrants.
//
// Thread safety: free functions on the caller's Db connection.
#pragma once

#include <cstdint>

#include "amparo/v1/envelope.pb.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/status.h"

namespace amparo::gateway {

inline constexpr char kRulesPeer[] = "rules";
inline constexpr int kDefaultSnapshotChunkSize = 5000;

struct SnapshotAnswer {
  uint64_t sequence = 0;     // registry sequence the answer was taken at
  uint32_t chunks = 0;       // chunks enqueued (0 for a probe)
  uint64_t registrants = 0;  // registrants in them
};

// Answers `request` as described above, inside the caller's open
// transaction on `db`. INVALID_ARGUMENT (field "snapshot_id") for a request
// without an id or with chunk_size < 1; database errors as they are.
Result<SnapshotAnswer> AnswerSnapshotRequest(Db& db, const v1::SnapshotRequest& request, const Clock& clock,
                                             int chunk_size = kDefaultSnapshotChunkSize);

}  // namespace amparo::gateway
