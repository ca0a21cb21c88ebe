#include "services/gateway/registry_stream.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>

#include "common/link.h"
#include "common/testing.h"
#include "services/gateway/gateway_store.h"

namespace amparo::gateway {
namespace {

class RegistryStreamTest : public ::testing::Test {
 protected:
  RegistryStreamTest() {
    db_.emplace(std::move(*Db::Open(dir_ / "gateway.db")));
    EXPECT_TRUE(MigrateGatewayDb(*db_).ok());
  }

  Registrant Insert(const std::string& ref, double lat, double lon, int household,
                    std::vector<std::string> vulnerabilities, std::string admin1 = "") {
    Registrant r;
    r.state = ref.substr(0, 3);
    r.external_ref = ref;
    r.host_country = "JPN";
    r.lat = lat;
    r.lon = lon;
    r.admin1 = std::move(admin1);
    r.household_size = household;
    r.vulnerabilities = std::move(vulnerabilities);
    r.contact.email = "someone@example.org";
    r.retention_until = "2030-01-01";
    auto stored = InsertRegistrant(*db_, r, keys_, access_, clock_);
    EXPECT_TRUE(stored.ok()) << stored.status().ToString();
    return *stored;
  }

  Result<SnapshotAnswer> Answer(const v1::SnapshotRequest& request, int chunk_size) {
    auto tx = Transaction::Begin(*db_);
    if (!tx.ok()) return tx.status();
    auto answer = AnswerSnapshotRequest(*db_, request, clock_, chunk_size);
    if (answer.ok()) {
      EXPECT_TRUE(tx->Commit().ok());
    }
    return answer;
  }

  std::vector<v1::Envelope> Outbox() { return *PendingOutbound(*db_, kRulesPeer); }

  testing::TempDir dir_;
  std::optional<Db> db_;
  FakeClock clock_;
  RegistryKeys keys_ = RegistryKeys::FromBytes(std::string(32, 'k'));
  Access access_{"token-1"};
};

TEST_F(RegistryStreamTest, SnapshotFollowsTheChangesAndHoldsExactlyTheRegistry) {
  Registrant a = Insert("PHL-1", 35.1, 139.1, 3, {"child", "trafficking_victim"}, "JP-13");
  Registrant b = Insert("PHL-2", 35.2, 139.2, 1, {});
  Registrant c = Insert("IND-3", 35.3, 139.3, 2, {"older_person"});
  Registrant d = Insert("IND-4", 35.4, 139.4, 5, {});
  Registrant e = Insert("NPL-5", 35.5, 139.5, 1, {"disability"});
  ASSERT_TRUE(DeleteRegistrant(*db_, "PHL", b.id, access_, clock_).ok());
  ASSERT_EQ(*RegistrySequence(*db_), 6);

  v1::SnapshotRequest request;
  request.set_snapshot_id("0123456789abcdef0123456789abcdef");
  auto answer = Answer(request, 2);
  ASSERT_TRUE(answer.ok()) << answer.status().ToString();
  EXPECT_EQ(answer->sequence, 6u);
  EXPECT_EQ(answer->registrants, 4u);
  EXPECT_EQ(answer->chunks, 2u);

  auto out = Outbox();
  ASSERT_EQ(out.size(), 8u);  // six changes, then two chunks
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(out[i].payload_case(), v1::Envelope::kRegistryChange);
    EXPECT_EQ(out[i].registry_change().sequence(), static_cast<uint64_t>(i + 1));
  }
  std::map<std::string, v1::RegistrantLocation> seen;
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(out[6 + i].payload_case(), v1::Envelope::kSnapshotChunk);
    const v1::SnapshotChunk& chunk = out[6 + i].snapshot_chunk();
    EXPECT_EQ(out[6 + i].producer(), "amparo-gateway");
    EXPECT_EQ(chunk.snapshot_id(), request.snapshot_id());
    EXPECT_EQ(chunk.sequence(), 6u);
    EXPECT_EQ(chunk.chunk_index(), static_cast<uint32_t>(i));
    EXPECT_EQ(chunk.final(), i == 1);
    EXPECT_EQ(chunk.registrants_size(), 2);
    for (const auto& loc : chunk.registrants()) seen[loc.registrant_id()] = loc;
  }
  EXPECT_EQ(out[7].snapshot_chunk().chunk_count(), 2u);
  EXPECT_EQ(out[7].snapshot_chunk().registrant_count(), 4u);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen.count(b.id), 0u);  // deleted before the snapshot
  const v1::RegistrantLocation& la = seen.at(a.id);
  EXPECT_EQ(la.state(), "PHL");
  EXPECT_EQ(la.host_country(), "JPN");
  EXPECT_EQ(la.admin1(), "JP-13");
  EXPECT_DOUBLE_EQ(la.lat(), 35.1);
  EXPECT_DOUBLE_EQ(la.lon(), 139.1);
  EXPECT_EQ(la.household_size(), 3u);
  EXPECT_EQ(la.vulnerability_flags(),
            static_cast<uint32_t>(v1::VULNERABILITY_FLAG_CHILD | v1::VULNERABILITY_FLAG_TRAFFICKING_VICTIM));
  EXPECT_EQ(seen.at(c.id).vulnerability_flags(), static_cast<uint32_t>(v1::VULNERABILITY_FLAG_OLDER_PERSON));
  EXPECT_EQ(seen.at(d.id).household_size(), 5u);
  EXPECT_EQ(seen.at(e.id).state(), "NPL");
  // The chunks carry matching fields only: no contact data anywhere.
  for (const auto& env : out) EXPECT_EQ(env.SerializeAsString().find("someone@example.org"), std::string::npos);
}

TEST_F(RegistryStreamTest, EmptyRegistryGivesOneEmptyFinalChunk) {
  v1::SnapshotRequest request;
  request.set_snapshot_id("s1");
  auto answer = Answer(request, 5000);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->chunks, 1u);
  auto out = Outbox();
  ASSERT_EQ(out.size(), 1u);
  const v1::SnapshotChunk& chunk = out[0].snapshot_chunk();
  EXPECT_TRUE(chunk.final());
  EXPECT_EQ(chunk.sequence(), 0u);
  EXPECT_EQ(chunk.chunk_count(), 1u);
  EXPECT_EQ(chunk.registrant_count(), 0u);
  EXPECT_EQ(chunk.registrants_size(), 0);
}

TEST_F(RegistryStreamTest, ExactMultipleOfTheChunkSizeHasNoEmptyTail) {
  for (int i = 0; i < 4; ++i) Insert("PHL-" + std::to_string(i), 10 + i, 20, 1, {});
  v1::SnapshotRequest request;
  request.set_snapshot_id("s2");
  auto answer = Answer(request, 2);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->chunks, 2u);
  auto out = Outbox();
  ASSERT_EQ(out.size(), 6u);
  EXPECT_FALSE(out[4].snapshot_chunk().final());
  EXPECT_TRUE(out[5].snapshot_chunk().final());
  EXPECT_EQ(out[5].snapshot_chunk().registrants_size(), 2);
}

TEST_F(RegistryStreamTest, ProbeAnswersWithTheSequenceOnly) {
  Insert("PHL-1", 1, 1, 1, {});
  Insert("PHL-2", 2, 2, 1, {});
  v1::SnapshotRequest request;
  request.set_snapshot_id("probe-1");
  request.set_probe_only(true);
  auto answer = Answer(request, 2);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->chunks, 0u);
  auto out = Outbox();
  ASSERT_EQ(out.size(), 3u);
  ASSERT_EQ(out[2].payload_case(), v1::Envelope::kRegistrySequenceMark);
  EXPECT_EQ(out[2].registry_sequence_mark().sequence(), 2u);
  EXPECT_EQ(out[2].registry_sequence_mark().snapshot_id(), "probe-1");
}

TEST_F(RegistryStreamTest, RequestWithoutIdIsRejected) {
  v1::SnapshotRequest request;
  auto answer = Answer(request, 10);
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(answer.status().field(), "snapshot_id");
  EXPECT_TRUE(Outbox().empty());
}

}  // namespace
}  // namespace amparo::gateway
