#include "services/gateway/registry_stream.h"

#include <boost/json.hpp>

#include "common/link.h"
#include "common/log.h"
#include "services/gateway/gateway_store.h"

namespace amparo::gateway {
namespace {

constexpr std::string_view kProducer = "amparo-gateway";

// The registrants table keeps vulnerabilities as a JSON array of names
// (written by gateway_store.cpp); the wire carries the registry.proto bit set.
uint32_t FlagsFromJson(const std::string& text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_array()) return 0;
  uint32_t flags = 0;
  for (const auto& item : v.as_array()) {
    if (!item.is_string()) continue;
    auto bit = VulnerabilityBit(std::string_view(item.as_string()));
    if (bit.ok()) flags |= *bit;
  }
  return flags;
}

}  // namespace

Result<SnapshotAnswer> AnswerSnapshotRequest(Db& db, const v1::SnapshotRequest& request, const Clock& clock,
                                             int chunk_size) {
  if (request.snapshot_id().empty()) return InvalidArgument("required", "snapshot_id");
  if (chunk_size < 1) return InvalidArgument("chunk size must be at least 1", "snapshot_id");
  auto sequence = RegistrySequence(db);
  if (!sequence.ok()) return sequence.status();
  SnapshotAnswer answer;
  answer.sequence = static_cast<uint64_t>(*sequence);

  if (request.probe_only()) {
    v1::Envelope env = MakeEnvelope(kProducer, clock);
    v1::RegistrySequenceMark* mark = env.mutable_registry_sequence_mark();
    mark->set_snapshot_id(request.snapshot_id());
    mark->set_sequence(answer.sequence);
    AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, kRulesPeer, env));
    return answer;
  }

  // Primary-key order (the table is clustered on it, so no sort) is only
  // for reproducible chunks; any order would do.
  auto q = db.Prepare(
      "SELECT id, state, host_country, admin1, lat, lon, household_size, vulnerabilities FROM registrants "
      "ORDER BY state, id");
  if (!q.ok()) return q.status();
  v1::Envelope env = MakeEnvelope(kProducer, clock);
  v1::SnapshotChunk* chunk = env.mutable_snapshot_chunk();
  auto flush = [&](bool final) -> Status {
    chunk->set_snapshot_id(request.snapshot_id());
    chunk->set_sequence(answer.sequence);
    chunk->set_chunk_index(answer.chunks);
    chunk->set_final(final);
    if (final) {
      chunk->set_chunk_count(answer.chunks + 1);
      chunk->set_registrant_count(answer.registrants);
    }
    AMPARO_RETURN_IF_ERROR(EnqueueOutbound(db, kRulesPeer, env));
    ++answer.chunks;
    env = MakeEnvelope(kProducer, clock);
    chunk = env.mutable_snapshot_chunk();
    return Status::Ok();
  };
  while (true) {
    auto row = q->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (chunk->registrants_size() == chunk_size) AMPARO_RETURN_IF_ERROR(flush(false));
    v1::RegistrantLocation* loc = chunk->add_registrants();
    loc->set_registrant_id(q->ColumnText(0));
    loc->set_state(q->ColumnText(1));
    loc->set_host_country(q->ColumnText(2));
    loc->set_admin1(q->ColumnText(3));
    loc->set_lat(q->ColumnDouble(4));
    loc->set_lon(q->ColumnDouble(5));
    loc->set_household_size(static_cast<uint32_t>(q->ColumnInt(6)));
    loc->set_vulnerability_flags(FlagsFromJson(q->ColumnText(7)));
    ++answer.registrants;
  }
  // Always a final chunk, empty for an empty registry, so the requester
  // learns the sequence and finishes.
  AMPARO_RETURN_IF_ERROR(flush(true));
  log::Info("registry snapshot enqueued",
            {{"snapshot_id", request.snapshot_id()},
             {"sequence", std::to_string(answer.sequence)},
             {"registrants", std::to_string(answer.registrants)},
             {"chunks", std::to_string(answer.chunks)},
             {"requester_applied", std::to_string(request.applied_sequence())}});
  return answer;
}

}  // namespace amparo::gateway
