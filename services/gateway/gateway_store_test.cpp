#include "services/gateway/gateway_store.h"

#include <gtest/gtest.h>

#include "common/link.h"

#include "amparo/v1/envelope.pb.h"
#include "common/alert_json.h"
#include "common/crypto.h"
#include "common/testing.h"

namespace amparo::gateway {
namespace {

class GatewayStoreTest : public ::testing::Test {
 protected:
  GatewayStoreTest() {
    db_.emplace(std::move(*Db::Open(dir_ / "gateway.db")));
    EXPECT_TRUE(MigrateGatewayDb(*db_).ok());
  }

  // The envelopes waiting in link_outbox for `peer`, oldest first.
  std::vector<v1::Envelope> Outbox(const std::string& peer) { return *PendingOutbound(*db_, peer); }

  Registrant Sample(const std::string& ref) {
    Registrant r;
    r.state = "PHL";
    r.external_ref = ref;
    r.host_country = "JPN";
    r.lat = 35.6895;
    r.lon = 139.6917;
    r.household_size = 4;
    r.languages = {"fil", "en"};
    r.vulnerabilities = {"child", "trafficking_victim"};
    r.retention_until = "2030-01-01";
    return r;
  }

  testing::TempDir dir_;
  std::optional<Db> db_;
  FakeClock clock_;
  RegistryKeys keys_ = RegistryKeys::FromBytes(std::string(32, 'k'));
  Access access_{"token-1"};
};

TEST_F(GatewayStoreTest, MigrationIsIdempotent) {
  EXPECT_TRUE(MigrateGatewayDb(*db_).ok());
  EXPECT_EQ(*RegistrySequence(*db_), 0);
}

// The bulk-import schema: registrants clustered on (state, id) without a
// rowid, and only the indexes a constraint needs (each is a B-tree every
// inserted row writes; retention goes through cohorts, not an index).
TEST_F(GatewayStoreTest, RegistrantsTableIsClusteredOnStateAndIdWithOneMoreIndex) {
  auto q = db_->Prepare("SELECT name, \"unique\" FROM pragma_index_list('registrants') ORDER BY name");
  ASSERT_TRUE(q.ok());
  std::vector<std::string> indexes;
  while (*q->Step()) indexes.push_back(q->ColumnText(0) + (q->ColumnInt(1) ? " unique" : ""));
  EXPECT_EQ(indexes,
            (std::vector<std::string>{"sqlite_autoindex_registrants_1 unique", "sqlite_autoindex_registrants_2 unique"}));
  // The primary key (autoindex 1) is (state, id); the table has no rowid.
  auto pk =
      db_->Prepare("SELECT group_concat(name, ',') FROM pragma_index_info('sqlite_autoindex_registrants_1')");
  ASSERT_TRUE(pk.ok() && *pk->Step());
  EXPECT_EQ(pk->ColumnText(0), "state,id");
  auto rowid = db_->Prepare("SELECT rowid FROM registrants");
  EXPECT_FALSE(rowid.ok());
  // A new gateway database has 16 KiB pages (a bulk import's writer does a
  // quarter less work per row than with 4 KiB), still in WAL mode.
  auto page = db_->Prepare("PRAGMA page_size");
  ASSERT_TRUE(page.ok() && *page->Step());
  EXPECT_EQ(page->ColumnInt(0), 16384);
  auto mode = db_->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok() && *mode->Step());
  EXPECT_EQ(mode->ColumnText(0), "wal");
}

// A database made by an older binary (4 KiB pages, tables already there)
// keeps its page size: changing it would rewrite the whole file.
TEST_F(GatewayStoreTest, AnExistingDatabaseKeepsItsPageSize) {
  auto old_db = Db::Open(dir_ / "old.db");
  ASSERT_TRUE(old_db.ok());
  ASSERT_TRUE(old_db->Exec("CREATE TABLE kept(x)").ok());
  ASSERT_TRUE(MigrateGatewayDb(*old_db).ok());
  auto page = old_db->Prepare("PRAGMA page_size");
  ASSERT_TRUE(page.ok() && *page->Step());
  EXPECT_EQ(page->ColumnInt(0), 4096);
}

// Consent is stored with one-letter keys (by the single insert and by the
// bulk import's sealer alike); rows an older binary wrote with the keys
// spelled out read back the same.
TEST_F(GatewayStoreTest, ConsentIsStoredCompactlyAndTheLongFormStillReads) {
  Registrant r = Sample("ref-c");
  r.consent = {true, false, true, 1704879000000, "notice-2024-01"};
  auto single = InsertRegistrant(*db_, r, keys_, access_, clock_);
  ASSERT_TRUE(single.ok()) << single.status().ToString();
  auto inserter = RegistrantInserter::Prepare(*db_, keys_, clock_);
  ASSERT_TRUE(inserter.ok());
  Registrant bulk = Sample("ref-d");
  bulk.consent = r.consent;
  ASSERT_TRUE(inserter->Insert(bulk).ok());
  ASSERT_TRUE(inserter->Finish().ok());
  auto stored = db_->Prepare("SELECT consent FROM registrants ORDER BY external_ref");
  ASSERT_TRUE(stored.ok());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(*stored->Step());
    EXPECT_EQ(stored->ColumnText(0), R"({"c":true,"a":false,"i":true,"r":1704879000000,"v":"notice-2024-01"})");
  }
  stored->Reset();
  ASSERT_TRUE(db_->Exec("UPDATE registrants SET consent = '{\"crisis_contact\":true,"
                        "\"share_aggregate_with_partners\":true,\"share_with_international_orgs\":false,"
                        "\"recorded_ms\":1600000000000,\"notice_version\":\"old\"}' WHERE external_ref = 'ref-d'")
                  .ok());
  auto old = GetRegistrant(*db_, "PHL", bulk.id, &keys_, access_, clock_);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_TRUE(old->consent.crisis_contact);
  EXPECT_TRUE(old->consent.share_aggregate_with_partners);
  EXPECT_FALSE(old->consent.share_with_international_orgs);
  EXPECT_EQ(old->consent.recorded_ms, 1600000000000);
  EXPECT_EQ(old->consent.notice_version, "old");
  auto compact = GetRegistrant(*db_, "PHL", single->id, &keys_, access_, clock_);
  ASSERT_TRUE(compact.ok());
  EXPECT_TRUE(compact->consent.crisis_contact);
  EXPECT_FALSE(compact->consent.share_aggregate_with_partners);
  EXPECT_TRUE(compact->consent.share_with_international_orgs);
  EXPECT_EQ(compact->consent.recorded_ms, 1704879000000);
  EXPECT_EQ(compact->consent.notice_version, "notice-2024-01");
}

TEST_F(GatewayStoreTest, WipePersonalEmptiesOnlyThePersonalFields) {
  Registrant r = Sample("ref-w");
  r.full_name = "Maria Clara de los Santos y Mendoza";  // longer than the small-string buffer
  r.contact = {"maria.santos@example.org", "+81312345678"};
  r.emergency_contact = {"Jose Santos", "+639171234567", "jose@example.org"};
  WipePersonal(&r);
  EXPECT_TRUE(r.full_name.empty() && r.contact.email.empty() && r.contact.phone.empty());
  EXPECT_TRUE(r.emergency_contact.name.empty() && r.emergency_contact.phone.empty() &&
              r.emergency_contact.email.empty());
  EXPECT_EQ(r.full_name.capacity(), std::string().capacity());  // the buffer is gone, not just cleared
  EXPECT_EQ(r.external_ref, "ref-w");
  EXPECT_EQ(r.host_country, "JPN");
  EXPECT_EQ(r.vulnerabilities, (std::vector<std::string>{"child", "trafficking_victim"}));
}

TEST_F(GatewayStoreTest, ParseRoleAcceptsTheThreeRolesOnly) {
  EXPECT_EQ(*ParseRole("registrar"), Role::kRegistrar);
  EXPECT_EQ(*ParseRole("operator"), Role::kOperator);
  EXPECT_EQ(*ParseRole("admin"), Role::kAdmin);
  auto bad = ParseRole("root");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().field(), "role");
}

TEST_F(GatewayStoreTest, CreatedTokenAuthenticatesAndOnlyItsHashIsStored) {
  auto token = CreateToken(*db_, "PHL", Role::kOperator, clock_);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->rfind("amp_", 0), 0u);
  EXPECT_EQ(token->size(), 4u + 43u);  // base64url of 32 bytes, unpadded

  auto who = Authenticate(*db_, *token);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->state, "PHL");
  EXPECT_EQ(who->role, Role::kOperator);
  EXPECT_EQ(who->id.size(), 32u);

  // The plaintext appears nowhere in the database; its SHA-256 does.
  auto q = db_->Prepare("SELECT id, token_sha256, state, role FROM tokens");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(1), Sha256Hex(*token));
  for (int col = 0; col < 4; ++col) EXPECT_EQ(q->ColumnText(col).find(token->substr(4)), std::string::npos);
  EXPECT_FALSE(*q->Step());
}

TEST_F(GatewayStoreTest, UnknownTamperedAndRevokedTokensAreUnauthenticated) {
  auto token = CreateToken(*db_, "PHL", Role::kRegistrar, clock_);
  ASSERT_TRUE(token.ok());
  std::string tampered = *token;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(Authenticate(*db_, tampered).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(Authenticate(*db_, "").status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(Authenticate(*db_, Sha256Hex(*token)).status().code(), StatusCode::kUnauthenticated);

  auto who = Authenticate(*db_, *token);
  ASSERT_TRUE(who.ok());
  ASSERT_TRUE(RevokeToken(*db_, who->id, clock_).ok());
  EXPECT_EQ(Authenticate(*db_, *token).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(RevokeToken(*db_, who->id, clock_).code(), StatusCode::kNotFound);
}

TEST_F(GatewayStoreTest, CreateTokenRejectsAStateThatIsNotUppercaseIso3) {
  for (std::string_view bad : {"phl", "PH", "PHLX", "", "P1L"}) {
    auto token = CreateToken(*db_, bad, Role::kAdmin, clock_);
    ASSERT_FALSE(token.ok()) << bad;
    EXPECT_EQ(token.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(token.status().field(), "state");
  }
}

TEST_F(GatewayStoreTest, VulnerabilityBitsFollowRegistryProto) {
  EXPECT_EQ(*VulnerabilityBit("unaccompanied_child"), uint32_t{v1::VULNERABILITY_FLAG_UNACCOMPANIED_CHILD});
  EXPECT_EQ(*VulnerabilityBit("child"), uint32_t{v1::VULNERABILITY_FLAG_CHILD});
  EXPECT_EQ(*VulnerabilityBit("in_detention"), uint32_t{v1::VULNERABILITY_FLAG_IN_DETENTION});
  EXPECT_EQ(*VulnerabilityBit("trafficking_victim"), uint32_t{v1::VULNERABILITY_FLAG_TRAFFICKING_VICTIM});
  EXPECT_EQ(VulnerabilityBit("refugee").status().field(), "vulnerabilities");
}

TEST_F(GatewayStoreTest, InsertAndDeleteEnqueueNumberedRegistryChangesForRules) {
  auto a = InsertRegistrant(*db_, Sample("ref-a"), keys_, access_, clock_);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = InsertRegistrant(*db_, Sample("ref-b"), keys_, access_, clock_);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(DeleteRegistrant(*db_, "PHL", a->id, access_, clock_).ok());
  EXPECT_EQ(*RegistrySequence(*db_), 3);

  auto sent = Outbox("rules");
  ASSERT_EQ(sent.size(), 3u);
  const auto& upsert = sent[0].registry_change();
  EXPECT_EQ(sent[0].producer(), "amparo-gateway");
  EXPECT_EQ(upsert.sequence(), 1u);
  EXPECT_EQ(upsert.kind(), v1::RegistryChange::KIND_UPSERT);
  EXPECT_EQ(upsert.location().registrant_id(), a->id);
  EXPECT_EQ(upsert.location().state(), "PHL");
  EXPECT_EQ(upsert.location().host_country(), "JPN");
  EXPECT_DOUBLE_EQ(upsert.location().lat(), 35.6895);
  EXPECT_DOUBLE_EQ(upsert.location().lon(), 139.6917);
  EXPECT_EQ(upsert.location().household_size(), 4u);
  EXPECT_EQ(upsert.location().vulnerability_flags(),
            uint32_t{v1::VULNERABILITY_FLAG_CHILD | v1::VULNERABILITY_FLAG_TRAFFICKING_VICTIM});
  EXPECT_EQ(sent[1].registry_change().sequence(), 2u);
  const auto& deleted = sent[2].registry_change();
  EXPECT_EQ(deleted.sequence(), 3u);
  EXPECT_EQ(deleted.kind(), v1::RegistryChange::KIND_DELETE);
  EXPECT_EQ(deleted.location().registrant_id(), a->id);
  EXPECT_EQ(deleted.location().state(), "PHL");
  EXPECT_EQ(deleted.location().host_country(), "");
}

TEST_F(GatewayStoreTest, DuplicateExternalRefIsRejectedAndNothingIsEnqueued) {
  ASSERT_TRUE(InsertRegistrant(*db_, Sample("ref-a"), keys_, access_, clock_).ok());
  auto again = InsertRegistrant(*db_, Sample("ref-a"), keys_, access_, clock_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().field(), "external_ref");
  EXPECT_EQ(Outbox("rules").size(), 1u);
  EXPECT_EQ(*RegistrySequence(*db_), 1);
  // Another state may use the same reference.
  Registrant other = Sample("ref-a");
  other.state = "IDN";
  EXPECT_TRUE(InsertRegistrant(*db_, other, keys_, access_, clock_).ok());
}

TEST_F(GatewayStoreTest, AnotherStatesRegistrantIsNotFoundAndCannotBeDeleted) {
  auto a = InsertRegistrant(*db_, Sample("ref-a"), keys_, access_, clock_);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(GetRegistrant(*db_, "IDN", a->id, &keys_, access_, clock_).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(DeleteRegistrant(*db_, "IDN", a->id, access_, clock_).code(), StatusCode::kNotFound);
  EXPECT_TRUE(ListRegistrants(*db_, "IDN", {}, "", 100, &keys_, access_, clock_)->items.empty());
  EXPECT_EQ(GetRegistrant(*db_, "PHL", a->id, &keys_, access_, clock_)->external_ref, "ref-a");
  EXPECT_EQ(Outbox("rules").size(), 1u);  // the refused delete sent nothing
}

TEST_F(GatewayStoreTest, SubscriptionsEnqueueForNotifyAndDeleteSendsDeletedTrue) {
  SubscriptionRecord s;
  s.state = "PHL";
  s.url = "https://embassy.example/hook";
  s.host_countries = {"JPN", "KOR"};
  s.description = "Tokyo";
  auto created = CreateSubscription(*db_, s, clock_);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->secret.rfind("whsec_", 0), 0u);
  EXPECT_EQ(Base64Decode(created->secret.substr(6))->size(), 24u);
  EXPECT_EQ(DeleteSubscription(*db_, "IDN", created->id, clock_).code(), StatusCode::kNotFound);
  ASSERT_TRUE(DeleteSubscription(*db_, "PHL", created->id, clock_).ok());
  EXPECT_TRUE(ListSubscriptions(*db_, "PHL")->empty());

  auto sent = Outbox("notify");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].subscription().subscription_id(), created->id);
  EXPECT_EQ(sent[0].subscription().secret(), created->secret);
  EXPECT_EQ(sent[0].subscription().url(), "https://embassy.example/hook");
  EXPECT_EQ(sent[0].subscription().host_countries_size(), 2);
  EXPECT_FALSE(sent[0].subscription().deleted());
  EXPECT_EQ(sent[1].subscription().subscription_id(), created->id);
  EXPECT_TRUE(sent[1].subscription().deleted());
}

v1::ConsularAlert Alert(const std::string& state, uint32_t revision, uint32_t registrants) {
  v1::ConsularAlert a;
  a.set_alert_id("usgs:us2000hf24/" + state + "/JPN");
  a.set_incident_id("usgs:us2000hf24");
  a.set_revision(revision);
  a.set_state(state);
  a.set_host_country("JPN");
  a.set_level(v1::ALERT_LEVEL_WARNING);
  a.mutable_exposure()->set_registrants(registrants);
  a.set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
  a.set_headline("M 6.6 - 27km ESE of Hokkaido");
  a.set_raised_ms(1'536'984'000'000);
  a.set_event_status("Actual");
  return a;
}

TEST_F(GatewayStoreTest, AlertKeepsTheNewestRevisionOnly) {
  EXPECT_TRUE(*UpsertAlert(*db_, Alert("PHL", 2, 20), clock_));
  EXPECT_FALSE(*UpsertAlert(*db_, Alert("PHL", 1, 10), clock_));  // late, older: ignored
  EXPECT_FALSE(*UpsertAlert(*db_, Alert("PHL", 2, 99), clock_));  // repeat: ignored
  auto stored = GetAlert(*db_, "PHL", "usgs:us2000hf24/PHL/JPN");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->revision, 2);
  EXPECT_EQ(stored->json, AlertToJson(Alert("PHL", 2, 20)));
  EXPECT_TRUE(*UpsertAlert(*db_, Alert("PHL", 3, 30), clock_));
  EXPECT_EQ(GetAlert(*db_, "PHL", "usgs:us2000hf24/PHL/JPN")->revision, 3);
  EXPECT_EQ(GetAlert(*db_, "IDN", "usgs:us2000hf24/PHL/JPN").status().code(), StatusCode::kNotFound);
}

TEST_F(GatewayStoreTest, DeliveriesAttachToTheirAlertAndKeepTheLatestState) {
  ASSERT_TRUE(*UpsertAlert(*db_, Alert("PHL", 1, 10), clock_));
  v1::DeliveryStatus d;
  d.set_delivery_id("msg_1");
  d.set_alert_id("usgs:us2000hf24/PHL/JPN");
  d.set_state(v1::DeliveryStatus::STATE_RETRYING);
  d.set_attempts(2);
  d.set_updated_ms(2000);
  ASSERT_TRUE(UpsertDelivery(*db_, d).ok());
  v1::DeliveryStatus stale = d;
  stale.set_state(v1::DeliveryStatus::STATE_PENDING);
  stale.set_attempts(1);
  stale.set_updated_ms(1000);
  ASSERT_TRUE(UpsertDelivery(*db_, stale).ok());
  auto alert = GetAlert(*db_, "PHL", "usgs:us2000hf24/PHL/JPN");
  ASSERT_EQ(alert->deliveries.size(), 1u);
  EXPECT_EQ(alert->deliveries[0].delivery_id, "msg_1");
  EXPECT_EQ(alert->deliveries[0].status, "retrying");
  EXPECT_EQ(alert->deliveries[0].attempts, 2);

  d.set_alert_id("no-state");
  EXPECT_EQ(UpsertDelivery(*db_, d).code(), StatusCode::kInvalidArgument);
}

TEST_F(GatewayStoreTest, IncidentsGroupAlertsOfTheCallersStateOnly) {
  ASSERT_TRUE(*UpsertAlert(*db_, Alert("PHL", 1, 10), clock_));
  v1::ConsularAlert korea = Alert("PHL", 1, 5);
  korea.set_alert_id("usgs:us2000hf24/PHL/KOR");
  korea.set_host_country("KOR");
  ASSERT_TRUE(*UpsertAlert(*db_, korea, clock_));
  ASSERT_TRUE(*UpsertAlert(*db_, Alert("IDN", 1, 7), clock_));
  auto incidents = ListIncidents(*db_, "PHL", 100);
  ASSERT_TRUE(incidents.ok());
  ASSERT_EQ(incidents->size(), 1u);
  EXPECT_EQ((*incidents)[0].incident_id, "usgs:us2000hf24");
  ASSERT_EQ((*incidents)[0].alerts.size(), 2u);
  EXPECT_EQ((*incidents)[0].alerts[0].alert_id, "usgs:us2000hf24/PHL/KOR");  // newest first
  EXPECT_EQ(ListAlerts(*db_, "IDN", 100)->size(), 1u);
}

}  // namespace
}  // namespace amparo::gateway
