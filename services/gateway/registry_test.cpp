// The registry below HTTP: the data model's validation, encryption at rest
// and key rotation, audit, patch, bulk import/export, retention, tokens and
// the rate limiter.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "amparo/v1/envelope.pb.h"
#include "common/audit.h"
#include "common/crypto.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/gateway/api_test_support.h"
#include "services/gateway/civil_date.h"
#include "services/gateway/gateway_store.h"
#include "services/gateway/import_export.h"
#include "services/gateway/rate_limiter.h"
#include "services/gateway/registrant_json.h"
#include "services/gateway/registry_keys.h"

namespace amparo::gateway {
namespace {

namespace json = boost::json;

// Three real GeoNames rows in the bundled file's format.
constexpr char kGazetteerTsv[] =
    "Tokyo\t\tJPN\tJP.40\t35.6895\t139.69171\t8336599\n"
    "Osaka\t\tJPN\tJP.32\t34.69374\t135.50218\t2592413\n"
    "Cebu City\t\tPHL\tPH.07\t10.31672\t123.89071\t798634\n";

constexpr char kFullBody[] = R"({
  "external_ref": "PH-7",
  "full_name": "Maria Clara Santos",
  "host_country": "JPN",
  "place": {"name": "Osaka", "country": "JPN"},
  "household": {"members": [{"age_band": "5-17", "nationality": "PHL"},
                            {"age_band": "18-59", "nationality": "JPN"}]},
  "languages": ["fil", "en", "ja"],
  "contact": {"email": "maria.santos@example.ph", "phone": "+639171234567"},
  "emergency_contact": {"name": "Jose Santos", "phone": "+639189876543", "email": "jose@example.ph"},
  "travel_document_expiry": "2027-03-31",
  "vulnerabilities": ["child", "isolated_domestic_worker"],
  "consent": {"crisis_contact": true, "share_aggregate_with_partners": true,
              "share_with_international_orgs": false, "notice_version": "2024-1"}
})";

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest() {
    db_.emplace(std::move(*Db::Open(dir_ / "gateway.db")));
    EXPECT_TRUE(MigrateGatewayDb(*db_).ok());
    std::ofstream(dir_ / "cities.tsv") << kGazetteerTsv;
    gazetteer_ = *Gazetteer::Load(dir_ / "cities.tsv");
    validation_.gazetteer = gazetteer_.get();
    validation_.clock = &clock_;
  }

  Registrant Parse(std::string_view body) {
    auto r = RegistrantFromJson(*ParseJsonObject(body), "PHL", validation_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Registrant{};
  }
  Status ParseError(std::string_view body) {
    auto object = ParseJsonObject(body);
    if (!object.ok()) return object.status();
    return RegistrantFromJson(*object, "PHL", validation_).status();
  }
  std::vector<v1::Envelope> Outbox() { return *PendingOutbound(*db_, "rules"); }
  int64_t AuditCount(const std::string& action) {
    auto q = db_->Prepare("SELECT count(*) FROM audit_log WHERE action = ?");
    q->Bind(1, action);
    EXPECT_TRUE(*q->Step());
    return q->ColumnInt(0);
  }
  // Every registrant of PHL, decrypted, by external_ref.
  std::map<std::string, Registrant> RegistrantsByRef() {
    std::map<std::string, Registrant> out;
    std::string cursor;
    while (true) {
      auto page = ListRegistrants(*db_, "PHL", {}, cursor, 1000, &keys_, access_, clock_);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) return out;
      for (auto& r : page->items) out[r.external_ref] = std::move(r);
      if (!page->next_cursor) return out;
      cursor = *page->next_cursor;
    }
  }
  std::string FileBytes(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  testing::TempDir dir_;
  std::optional<Db> db_;
  FakeClock clock_{1'700'000'000'000};  // 2023-11-14
  std::shared_ptr<const Gazetteer> gazetteer_;
  RegistrantValidation validation_;
  RegistryKeys keys_ = RegistryKeys::FromBytes(std::string(32, 'a'));
  Access access_{"tok-1"};
  Token token_{"tok-1", "PHL", Role::kRegistrar};
};

TEST_F(RegistryTest, FullModelIsValidatedAndNormalised) {
  Registrant r = Parse(kFullBody);
  EXPECT_EQ(r.full_name, "Maria Clara Santos");
  EXPECT_EQ(r.place_name, "Osaka");
  EXPECT_EQ(r.admin1, "JP.32");
  EXPECT_DOUBLE_EQ(r.lat, 34.69374);
  EXPECT_DOUBLE_EQ(r.lon, 135.50218);
  EXPECT_EQ(r.location_precision_m, 10'000);
  EXPECT_EQ(r.household_size, 3);  // derived: 1 + 2 members
  ASSERT_EQ(r.household_members.size(), 2u);
  EXPECT_EQ(r.household_members[1], (HouseholdMember{"18-59", "JPN"}));
  EXPECT_EQ(r.languages, (std::vector<std::string>{"fil", "en", "ja"}));
  EXPECT_EQ(r.contact.phone, "+639171234567");
  EXPECT_EQ(r.emergency_contact.email, "jose@example.ph");
  EXPECT_TRUE(r.consent.crisis_contact);
  EXPECT_FALSE(r.consent.share_with_international_orgs);
  EXPECT_EQ(r.consent.recorded_ms, clock_.NowMs());
  EXPECT_EQ(r.consent.notice_version, "2024-1");
  EXPECT_EQ(r.retention_until, "2025-11-13");  // today + 730 days
}

TEST_F(RegistryTest, ImmigrationStatusAndOtherUnknownFieldsAreRefusedByName) {
  for (const char* field : {"immigration_status", "visa_status", "legal_status"}) {
    std::string body = std::string(R"({"external_ref":"a","host_country":"JPN","lat":1,"lon":2,")") + field +
                       R"(":"regular"})";
    Status st = ParseError(body);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_EQ(st.field(), field);
  }
  EXPECT_EQ(ParseError(R"({"external_ref":"a","host_country":"JPN","lat":1,"lon":2,"contact":{"fax":"1"}})")
                .field(),
            "contact.fax");
}

TEST_F(RegistryTest, FieldErrorsNameTheNestedField) {
  const std::string base = R"({"external_ref":"a","host_country":"JPN","lat":1,"lon":2,)";
  struct Case {
    std::string extra;
    std::string field;
  };
  const std::vector<Case> cases = {
      {R"("contact":{"email":"not-an-address"}})", "contact.email"},
      {R"("contact":{"phone":"09171234567"}})", "contact.phone"},
      {R"("emergency_contact":{"phone":"+0123"}})", "emergency_contact.phone"},
      {R"("household":{"members":[{"age_band":"20-30","nationality":"PHL"}]}})", "household.members"},
      {R"("household":{"members":[{"age_band":"0-4","nationality":"ph"}]}})", "household.members"},
      {R"("household_size":1,"household":{"members":[{"age_band":"0-4","nationality":"PHL"}]}})",
       "household_size"},
      {R"("travel_document_expiry":"2027-02-30"})", "travel_document_expiry"},
      {R"("consent":{"crisis_contact":"yes"}})", "consent.crisis_contact"},
      {R"("consent":{"recorded_at":"yesterday"}})", "consent.recorded_at"},
      {R"("retention_until":"2020-01-01"})", "retention_until"},
      {R"("place":{"name":"Atlantis"}})", "place.name"},
      {R"("location_precision_m":0})", "location_precision_m"},
  };
  for (const auto& c : cases) {
    Status st = ParseError(base + c.extra);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.extra;
    EXPECT_EQ(st.field(), c.field) << c.extra << " -> " << st.ToString();
  }
  EXPECT_EQ(ParseError(R"({"external_ref":"a","host_country":"JPN"})").field(), "lat");
  EXPECT_EQ(
      ParseError(R"({"external_ref":"a","host_country":"JPN","place":{"name":"Cebu City","country":"PHL"}})")
          .field(),
      "place.country");
  validation_.gazetteer = nullptr;
  EXPECT_EQ(ParseError(R"({"external_ref":"a","host_country":"JPN","place":{"name":"Osaka"}})").field(),
            "place");
}

TEST_F(RegistryTest, KeyFileIsCreatedOnceWithMode0600) {
  const auto keys_dir = dir_ / "keys";
  ASSERT_TRUE(EnsureRegistryKey(keys_dir).ok());
  const std::string first = FileBytes(keys_dir / "registry.key");
  ASSERT_TRUE(EnsureRegistryKey(keys_dir).ok());
  EXPECT_EQ(FileBytes(keys_dir / "registry.key"), first);  // idempotent
  struct stat st {};
  ASSERT_EQ(stat((keys_dir / "registry.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto key = Base64Decode(first.substr(0, first.size() - 1));
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->size(), 32u);
  auto keys = RegistryKeys::Load(keys_dir);
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->current_id(), Sha256Hex(*key).substr(0, 8));
  EXPECT_EQ(RegistryKeys::Load(dir_ / "nowhere").status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(RegistryTest, TheDatabaseFileHoldsNoPlaintextPersonalData) {
  auto stored = InsertRegistrant(*db_, Parse(kFullBody), keys_, access_, clock_);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  ASSERT_TRUE(db_->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  std::string bytes = FileBytes(dir_ / "gateway.db") + FileBytes(dir_ / "gateway.db-wal");
  ASSERT_NE(bytes.find("PH-7"), std::string::npos);  // the scan does see plaintext columns
  for (const char* secret : {"maria.santos@example.ph", "+639171234567", "Maria Clara Santos", "Jose Santos",
                             "+639189876543", "jose@example.ph"}) {
    EXPECT_EQ(bytes.find(secret), std::string::npos) << secret;
  }
  auto back = GetRegistrant(*db_, "PHL", stored->id, &keys_, access_, clock_);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->full_name, "Maria Clara Santos");
  EXPECT_EQ(back->contact.email, "maria.santos@example.ph");
  EXPECT_EQ(back->emergency_contact.name, "Jose Santos");
  // Without keys (the operators' view) nothing personal is even decrypted.
  auto minimal = GetRegistrant(*db_, "PHL", stored->id, nullptr, access_, clock_);
  EXPECT_EQ(minimal->full_name, "");
  EXPECT_EQ(minimal->contact.email, "");
  // A wrong key does not open it.
  RegistryKeys other = RegistryKeys::FromBytes(std::string(32, 'z'));
  EXPECT_EQ(GetRegistrant(*db_, "PHL", stored->id, &other, access_, clock_).status().code(),
            StatusCode::kDataLoss);
}

TEST_F(RegistryTest, RotationKeepsOldRowsReadableAndReencryptMovesThemToTheNewKey) {
  const auto keys_dir = dir_ / "keys";
  ASSERT_TRUE(EnsureRegistryKey(keys_dir).ok());
  auto old_keys = *RegistryKeys::Load(keys_dir);
  auto a = InsertRegistrant(*db_, Parse(kFullBody), old_keys, access_, clock_);
  ASSERT_TRUE(a.ok());
  auto new_id = RotateRegistryKey(keys_dir);
  ASSERT_TRUE(new_id.ok());
  EXPECT_NE(*new_id, old_keys.current_id());
  EXPECT_TRUE(std::filesystem::exists(keys_dir / ("registry." + old_keys.current_id() + ".key")));
  auto keys = *RegistryKeys::Load(keys_dir);
  EXPECT_EQ(keys.current_id(), *new_id);
  EXPECT_EQ(GetRegistrant(*db_, "PHL", a->id, &keys, access_, clock_)->contact.email,
            "maria.santos@example.ph");

  EXPECT_EQ(*ReencryptRegistry(*db_, keys), 1);
  EXPECT_EQ(*ReencryptRegistry(*db_, keys), 0);  // nothing left on the old key
  auto usage = *RegistryKeyUsage(*db_);
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0].first, *new_id);
  // The old key file can now go: the new key alone opens the row.
  std::filesystem::remove(keys_dir / ("registry." + old_keys.current_id() + ".key"));
  auto only_new = *RegistryKeys::Load(keys_dir);
  EXPECT_EQ(GetRegistrant(*db_, "PHL", a->id, &only_new, access_, clock_)->full_name, "Maria Clara Santos");
}

// ReencryptRegistry walks the (state, id) primary key 1000 rows per
// transaction: rows of two states, more than two transactions' worth, all
// move to the new key and still open.
TEST_F(RegistryTest, ReencryptWalksEveryStateAcrossTransactions) {
  const auto old_keys = RegistryKeys::FromBytes(std::string(32, 'o'));
  for (const char* state : {"PHL", "NPL"}) {
    std::string csv = "external_ref,host_country,lat,lon,full_name\n";
    for (int i = 0; i < 1300; ++i)
      csv += "E" + std::to_string(i) + ",JPN,35,139,Name " + std::to_string(i) + "\n";
    std::istringstream in(csv);
    const Token token{"tok-" + std::string(state), state, Role::kRegistrar};
    auto report = ImportRegistrants(*db_, token, in, RegistryFormat::kCsv, old_keys, clock_);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_EQ(report->imported, 1300);
  }
  const auto keys =
      RegistryKeys::FromBytes(std::string(32, 'n'), {{old_keys.current_id(), std::string(32, 'o')}});
  EXPECT_EQ(*ReencryptRegistry(*db_, keys), 2600);
  EXPECT_EQ(*ReencryptRegistry(*db_, keys), 0);
  auto usage = *RegistryKeyUsage(*db_);
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage[0], (std::pair<std::string, int64_t>{keys.current_id(), 2600}));
  const auto only_new = RegistryKeys::FromBytes(std::string(32, 'n'));
  auto page = *ListRegistrants(*db_, "NPL", {}, "", 1000, &only_new, access_, clock_);
  ASSERT_EQ(page.items.size(), 1000u);
  EXPECT_EQ(page.items[0].full_name.rfind("Name ", 0), 0u);
}

TEST_F(RegistryTest, EveryReadAndWriteIsAuditedWithActorAndPurpose) {
  Access crisis{"tok-9", "crisis-response"};
  auto a = InsertRegistrant(*db_, Parse(kFullBody), keys_, access_, clock_);
  ASSERT_TRUE(GetRegistrant(*db_, "PHL", a->id, &keys_, crisis, clock_).ok());
  ASSERT_TRUE(ListRegistrants(*db_, "PHL", {}, "", 10, nullptr, crisis, clock_).ok());
  ASSERT_TRUE(UpdateRegistrant(
                  *db_, "PHL", a->id, [](const Registrant& r) { return Result<Registrant>(r); }, keys_,
                  access_, clock_)
                  .ok());
  ASSERT_TRUE(DeleteRegistrant(*db_, "PHL", a->id, access_, clock_).ok());
  // A miss reads nothing personal: not audited.
  EXPECT_EQ(GetRegistrant(*db_, "PHL", a->id, &keys_, crisis, clock_).status().code(), StatusCode::kNotFound);
  auto q = db_->Prepare("SELECT actor, state, action, subject, purpose FROM audit_log ORDER BY seq");
  std::vector<std::string> rows;
  while (*q->Step()) {
    rows.push_back(q->ColumnText(0) + "|" + q->ColumnText(1) + "|" + q->ColumnText(2) + "|" +
                   q->ColumnText(3) + "|" + q->ColumnText(4));
  }
  EXPECT_EQ(rows, (std::vector<std::string>{
                      "tok-1|PHL|registrant.create|" + a->id + "|registry-maintenance",
                      "tok-9|PHL|registrant.read|" + a->id + "|crisis-response",
                      "tok-9|PHL|registrant.list|*|crisis-response",
                      "tok-1|PHL|registrant.update|" + a->id + "|registry-maintenance",
                      "tok-1|PHL|registrant.delete|" + a->id + "|registry-maintenance",
                  }));
  EXPECT_TRUE(VerifyAudit(*db_)->ok());
}

TEST_F(RegistryTest, PatchSendsAnUpsertOnlyWhenMatchingFieldsChange) {
  auto a = InsertRegistrant(*db_, Parse(kFullBody), keys_, access_, clock_);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(Outbox().size(), 1u);
  auto patch = [&](std::string_view body) {
    json::object p = *ParseJsonObject(body);
    return UpdateRegistrant(
        *db_, "PHL", a->id,
        [&](const Registrant& current) { return ApplyRegistrantPatch(current, p, validation_); }, keys_,
        access_, clock_);
  };
  clock_.Advance(1000);
  auto contact_only = patch(R"({"contact":{"phone":"+639170000000"},"full_name":null})");
  ASSERT_TRUE(contact_only.ok()) << contact_only.status().ToString();
  EXPECT_EQ(contact_only->contact.phone, "+639170000000");
  EXPECT_EQ(contact_only->contact.email, "maria.santos@example.ph");  // merged, not replaced
  EXPECT_EQ(contact_only->full_name, "");
  EXPECT_EQ(contact_only->updated_ms, clock_.NowMs());
  EXPECT_EQ(Outbox().size(), 1u);  // nothing for rules

  auto moved = patch(R"({"place":{"name":"Tokyo"}})");
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->admin1, "JP.40");
  EXPECT_DOUBLE_EQ(moved->lat, 35.6895);
  auto sent = Outbox();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].registry_change().kind(), v1::RegistryChange::KIND_UPSERT);
  EXPECT_EQ(sent[1].registry_change().location().admin1(), "JP.40");
  EXPECT_EQ(sent[1].registry_change().sequence(), 2u);

  auto flags = patch(R"({"vulnerabilities":["child","pregnancy"]})");
  ASSERT_TRUE(flags.ok());
  EXPECT_EQ(Outbox().size(), 3u);
  EXPECT_EQ(Outbox()[2].registry_change().location().vulnerability_flags(),
            uint32_t{v1::VULNERABILITY_FLAG_CHILD | v1::VULNERABILITY_FLAG_PREGNANCY});

  auto bad = patch(R"({"immigration_status":"irregular"})");
  EXPECT_EQ(bad.status().field(), "immigration_status");
  auto coords = patch(R"({"lat":35.0,"lon":136.0})");
  ASSERT_TRUE(coords.ok()) << coords.status().ToString();
  EXPECT_EQ(coords->place_name, "");  // explicit coordinates drop the place
  EXPECT_EQ(coords->admin1, "");
  EXPECT_EQ(coords->created_ms, a->created_ms);
}

TEST_F(RegistryTest, ListFiltersByHostCountryAdmin1AndFlag) {
  ASSERT_TRUE(InsertRegistrant(*db_, Parse(kFullBody), keys_, access_, clock_).ok());
  ASSERT_TRUE(InsertRegistrant(*db_,
                               Parse(R"({"external_ref":"b","host_country":"JPN","place":{"name":"Tokyo"},
                                   "vulnerabilities":["older_person"]})"),
                               keys_, access_, clock_)
                  .ok());
  ASSERT_TRUE(InsertRegistrant(*db_,
                               Parse(R"({"external_ref":"c","host_country":"KOR","lat":37.5,"lon":127})"),
                               keys_, access_, clock_)
                  .ok());
  auto refs = [&](const RegistrantFilter& f) {
    std::vector<std::string> out;
    auto page = ListRegistrants(*db_, "PHL", f, "", 100, nullptr, access_, clock_);
    EXPECT_TRUE(page.ok());
    for (const auto& r : page->items) {
      out.push_back(r.external_ref);
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(refs({"JPN", "", ""}), (std::vector<std::string>{"PH-7", "b"}));
  EXPECT_EQ(refs({"", "JP.40", ""}), (std::vector<std::string>{"b"}));
  EXPECT_EQ(refs({"", "", "child"}), (std::vector<std::string>{"PH-7"}));
  EXPECT_EQ(refs({"JPN", "", "older_person"}), (std::vector<std::string>{"b"}));
  EXPECT_EQ(refs({"KOR", "", "child"}), (std::vector<std::string>{}));
  EXPECT_EQ(
      ListRegistrants(*db_, "PHL", {"", "", "refugee"}, "", 10, nullptr, access_, clock_).status().field(),
      "flag");
}

constexpr char kCsv[] =
    "\xEF\xBB\xBF"
    "external_ref,full_name,host_country,lat,lon,place.name,household.members,languages,contact.email,"
    "contact.phone,vulnerabilities,consent.crisis_contact,immigration_ok\r\n";

TEST_F(RegistryTest, CsvHeaderWithAnUnknownColumnRefusesTheWholeFile) {
  std::istringstream in(std::string(kCsv) + "a,,JPN,1,2,,,,,,,,\r\n");
  auto report = ImportRegistrants(*db_, token_, in, RegistryFormat::kCsv, keys_, clock_);
  EXPECT_EQ(report.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(report.status().field(), "immigration_ok");
  EXPECT_EQ(*CountRegistrants(*db_), 0);
}

TEST_F(RegistryTest, CsvImportReportsRejectedRowsAndImportsTheRest) {
  std::string header = kCsv;
  header.erase(header.rfind(",immigration_ok"), std::string(",immigration_ok").size());
  const std::string csv = header +
                          "PH-1,\"Santos, Maria\",JPN,35.1,139.2,,18-59:PHL;5-17:JPN,fil;en,m@example.ph,"
                          "+639171234567,child;older_person,true\r\n"
                          "PH-2,,JPN,,,Osaka,,,,,,\r\n"
                          "PH-3,,JPN,95,139,,,,,,,\r\n"           // lat out of range
                          "PH-4,,JPN,35,139,,,,bad-email,,,\r\n"  // contact.email
                          "PH-1,,JPN,35,139,,,,,,,\r\n"           // duplicate of row 1
                          "PH-6,,JPN,35,139,,20-30:PHL,,,,,\r\n"  // household.members
                          "PH-7,,JPN,35,139,,,,,,,maybe\r\n"      // consent.crisis_contact
                          "PH-8,,JPN,35,139\r\n";                 // short row
  std::istringstream in(csv);
  ImportOptions options;
  options.gazetteer = gazetteer_.get();
  options.batch_rows = 3;
  options.commit_rows = 1;  // a commit (and a progress call) per batch
  std::vector<int64_t> progress;
  options.progress = [&](int64_t rows) { progress.push_back(rows); };
  auto report = ImportRegistrants(*db_, token_, in, RegistryFormat::kCsv, keys_, clock_, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->imported, 2);
  EXPECT_EQ(report->rejected, 6);
  std::vector<std::string> errors;
  for (const auto& e : report->errors) errors.push_back(std::to_string(e.row) + ":" + e.field);
  std::sort(errors.begin(), errors.end());
  EXPECT_EQ(errors, (std::vector<std::string>{"3:lat", "4:contact.email", "5:external_ref",
                                              "6:household.members", "7:consent.crisis_contact", "8:"}));
  EXPECT_EQ(progress, (std::vector<int64_t>{5, 8}));  // a batch of 3 valid rows at row 5, then the end
  auto page = *ListRegistrants(*db_, "PHL", {}, "", 10, &keys_, access_, clock_);
  ASSERT_EQ(page.items.size(), 2u);
  const Registrant& one = page.items[0].external_ref == "PH-1" ? page.items[0] : page.items[1];
  EXPECT_EQ(one.full_name, "Santos, Maria");
  EXPECT_EQ(one.household_size, 3);
  EXPECT_EQ(one.languages, (std::vector<std::string>{"fil", "en"}));
  EXPECT_EQ(one.vulnerabilities, (std::vector<std::string>{"child", "older_person"}));
  EXPECT_TRUE(one.consent.crisis_contact);
  EXPECT_EQ(RegistryChangesIn(Outbox()).size(), 2u);
  EXPECT_EQ(Outbox().size(), 1u);  // one registry_changes message for the two rows
  EXPECT_GE(AuditCount("registrant.import"), 1);
}

// The reader thread and the inline path must report the same rows, and the
// rows of an import get distinct 32-hex ids and consecutive change numbers.
TEST_F(RegistryTest, ImportInlineAndParallelAgreeOnRowsIdsAndChangeSequence) {
  std::string csv = "external_ref,host_country,lat,lon,contact.email\n";
  for (int i = 1; i <= 23; ++i) {
    const bool bad_email = i % 5 == 0, bad_lat = i % 7 == 0;
    csv += "X" + std::to_string(i % 19) + ",JPN," + (bad_lat ? "91" : "35") + ",139," +
           (bad_email ? "nope" : "x" + std::to_string(i) + "@example.ph") + "\n";
  }
  std::vector<std::string> reports;
  for (bool parallel : {true, false}) {
    testing::TempDir dir;
    Db db = std::move(*Db::Open(dir / "gateway.db"));
    ASSERT_TRUE(MigrateGatewayDb(db).ok());
    std::istringstream in(csv);
    ImportOptions options;
    options.batch_rows = 4;
    options.commit_rows = 1;  // a commit (and a progress call) per batch
    options.parallel = parallel;
    std::vector<int64_t> progress;
    options.progress = [&](int64_t rows) { progress.push_back(rows); };
    auto report = ImportRegistrants(db, token_, in, RegistryFormat::kCsv, keys_, clock_, options);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    // 23 rows: bad e-mails at 5, 10, 15, 20, bad lat at 7, 14, 21, and
    // rows 22 and 23 repeat the external_ref of rows 3 and 4.
    EXPECT_EQ(report->imported, 14);
    EXPECT_EQ(report->rejected, 9);
    std::string text;
    for (const auto& e : report->errors) text += std::to_string(e.row) + ":" + e.field + " ";
    for (int64_t p : progress) text += "@" + std::to_string(p);
    reports.push_back(text);
    // One message per transaction (a commit per batch here): a batch of
    // the rows stored, or a plain registry_change for a lone row.
    auto sent = *PendingOutbound(db, "rules");
    std::set<std::string> message_ids;
    for (const auto& m : sent) message_ids.insert(m.message_id());
    EXPECT_EQ(sent.size(), 4u);  // transactions end at rows 4, 11, 17, 23
    EXPECT_EQ(message_ids.size(), 4u);
    auto changes = RegistryChangesIn(sent);
    ASSERT_EQ(changes.size(), 14u);
    std::set<std::string> ids;
    for (size_t i = 0; i < changes.size(); ++i) {
      EXPECT_EQ(changes[i].sequence(), i + 1);
      EXPECT_EQ(changes[i].kind(), v1::RegistryChange::KIND_UPSERT);
      const std::string& id = changes[i].location().registrant_id();
      EXPECT_EQ(id.size(), 32u);
      EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
      ids.insert(id);
    }
    EXPECT_EQ(ids.size(), 14u);
    EXPECT_EQ(*RegistrySequence(db), 14);
  }
  EXPECT_EQ(reports[0], reports[1]);
  EXPECT_EQ(reports[0],
            "5:contact.email 7:lat 10:contact.email 14:lat 15:contact.email 20:contact.email 21:lat "
            "22:external_ref 23:external_ref @4@11@17@23");
}

// A transaction spans batches (commit_rows): every batch keeps its audit
// entry, rows rejected in any batch are reported, the change sequence has
// no gap where a duplicate took none, and the sequence written back once
// per transaction is where the next single create continues.
TEST_F(RegistryTest, ImportTransactionsSpanBatchesAndKeepTheSequenceContiguous) {
  std::string csv = "external_ref,host_country,lat,lon\n";
  for (int i = 1; i <= 10; ++i) csv += "R" + std::to_string(i % 8) + ",JPN,35,139\n";  // 9, 10 repeat 1, 2
  csv += "R9,JPN,95,139\n";                                                            // row 11: lat
  std::istringstream in(csv);
  ImportOptions options;
  options.batch_rows = 3;
  options.commit_rows = 6;  // two batches per transaction
  std::vector<int64_t> progress;
  options.progress = [&](int64_t rows) { progress.push_back(rows); };
  auto report = ImportRegistrants(*db_, token_, in, RegistryFormat::kCsv, keys_, clock_, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->imported, 8);
  EXPECT_EQ(report->rejected, 3);
  std::string errors;
  for (const auto& e : report->errors) errors += std::to_string(e.row) + ":" + e.field + " ";
  // Per batch: the reader's rejects, then the writer's duplicates.
  EXPECT_EQ(errors, "9:external_ref 11:lat 10:external_ref ");
  // Batches end at rows 3, 6, 9 and 11 (the last); commits after 6 rows
  // (row 6) and at the end.
  EXPECT_EQ(progress, (std::vector<int64_t>{6, 11}));
  EXPECT_EQ(AuditCount("registrant.import"), 4);
  auto changes = RegistryChangesIn(Outbox());
  ASSERT_EQ(changes.size(), 8u);
  for (size_t i = 0; i < changes.size(); ++i) EXPECT_EQ(changes[i].sequence(), i + 1);
  EXPECT_EQ(Outbox().size(), 2u);  // one registry_changes message per transaction
  EXPECT_EQ(*RegistrySequence(*db_), 8);
  ASSERT_TRUE(InsertRegistrant(*db_, Parse(kFullBody), keys_, access_, clock_).ok());
  EXPECT_EQ(*RegistrySequence(*db_), 9);
  auto sent = Outbox();
  ASSERT_EQ(sent.size(), 3u);
  ASSERT_TRUE(sent[2].has_registry_change());  // a lone change goes unbatched
  EXPECT_EQ(sent[2].registry_change().sequence(), 9u);
  for (const auto& m : sent) {  // a whole envelope header either way
    EXPECT_EQ(m.schema_version(), MakeEnvelope("x", clock_).schema_version());
    EXPECT_EQ(m.producer(), "amparo-gateway");
    EXPECT_EQ(m.message_id().size(), 32u);
  }
}

TEST_F(RegistryTest, ExportAndImportRoundTripInBothFormats) {
  ASSERT_TRUE(InsertRegistrant(*db_, Parse(kFullBody), keys_, access_, clock_).ok());
  ASSERT_TRUE(
      InsertRegistrant(*db_,
                       Parse(R"({"external_ref":"q\"uote, d","host_country":"KOR","lat":37.5665,"lon":126.978,
                                   "location_precision_m":50,"retention_until":"2031-05-01"})"),
                       keys_, access_, clock_)
          .ok());
  for (RegistryFormat format : {RegistryFormat::kCsv, RegistryFormat::kNdjson}) {
    std::ostringstream first;
    ASSERT_EQ(*ExportRegistrants(*db_, token_, first, format, keys_, clock_), 2);
    testing::TempDir other_dir;
    Db other = std::move(*Db::Open(other_dir / "gateway.db"));
    ASSERT_TRUE(MigrateGatewayDb(other).ok());
    std::istringstream in(first.str());
    ImportOptions options;
    options.gazetteer = gazetteer_.get();
    auto report = ImportRegistrants(other, token_, in, format, keys_, clock_, options);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->imported, 2) << (report->errors.empty()
                                           ? ""
                                           : report->errors[0].field + ": " + report->errors[0].reason);
    std::ostringstream second;
    ASSERT_EQ(*ExportRegistrants(other, token_, second, format, keys_, clock_), 2);
    // Equal but for ids (new ones): compare with the id column/field blanked.
    auto strip_ids = [](std::string text) {
      std::vector<std::string> lines;
      std::istringstream s(text);
      for (std::string line; std::getline(s, line);) {
        size_t at = line.find("\"id\":\"");
        if (at != std::string::npos)
          line.replace(at + 6, 32, "");
        else if (line.size() > 33 && line[32] == ',')
          line.erase(0, 32);
        lines.push_back(line);
      }
      std::sort(lines.begin(), lines.end());
      return lines;
    };
    EXPECT_EQ(strip_ids(first.str()), strip_ids(second.str()));
    EXPECT_NE(first.str().find("maria.santos@example.ph"), std::string::npos);
  }
  EXPECT_EQ(AuditCount("registrant.export"), 2);
}

TEST_F(RegistryTest, CsvExportDefusesFormulasAndImportRestoresTheText) {
  ASSERT_TRUE(InsertRegistrant(*db_, Parse(R"x({"external_ref":"=HYPERLINK(\"http://x.example\",\"a\")",
                                   "full_name":"@SUM(A1:A9)","host_country":"KOR","lat":-37.5,"lon":-126.9,
                                   "contact":{"phone":"+639171234567"},"retention_until":"2031-05-01"})x"),
                               keys_, access_, clock_)
                  .ok());
  std::ostringstream csv;
  ASSERT_EQ(*ExportRegistrants(*db_, token_, csv, RegistryFormat::kCsv, keys_, clock_), 1);
  const std::string text = csv.str();
  EXPECT_NE(text.find(R"x("'=HYPERLINK(""http://x.example"",""a"")")x"), std::string::npos) << text;
  EXPECT_NE(text.find(",'@SUM(A1:A9),"), std::string::npos) << text;
  EXPECT_NE(text.find(",'+639171234567,"), std::string::npos) << text;
  EXPECT_NE(text.find(",-37.5,-126.9,"), std::string::npos) << text;  // numbers are not text: untouched

  testing::TempDir other_dir;
  Db other = std::move(*Db::Open(other_dir / "gateway.db"));
  ASSERT_TRUE(MigrateGatewayDb(other).ok());
  std::istringstream in(text);
  auto report = ImportRegistrants(other, token_, in, RegistryFormat::kCsv, keys_, clock_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->imported, 1);
  std::ostringstream ndjson;
  ASSERT_EQ(*ExportRegistrants(other, token_, ndjson, RegistryFormat::kNdjson, keys_, clock_), 1);
  EXPECT_NE(ndjson.str().find(R"x("external_ref":"=HYPERLINK(\"http://x.example\",\"a\")")x"),
            std::string::npos)
      << ndjson.str();
  EXPECT_NE(ndjson.str().find(R"x("full_name":"@SUM(A1:A9)")x"), std::string::npos);
  EXPECT_NE(ndjson.str().find(R"("phone":"+639171234567")"), std::string::npos);
}

// The CSV reader's buffer holds one record of the bound (max_row_bytes
// 120: 121 bytes), so records and quoted cells cross refills everywhere;
// a first row of growing length shifts every later byte across them.
// Quoted cells keep commas and doubled quotes, a line break inside quotes
// stays in its cell (and full_name refuses it), a record of exactly the
// bound (its line end included) is read, longer ones are rejected with
// their row, and a quote left open at the end rejects the last row.
TEST_F(RegistryTest, CsvReaderQuotesRecordBoundAndOpenQuoteAcrossBufferRefills) {
  ImportOptions options;
  options.max_row_bytes = 120;
  auto quote = [](const std::string& text) {
    std::string out = "\"";
    for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  };
  std::map<std::string, std::string> names;  // external_ref -> full_name
  for (int shift = 0; shift < 48; ++shift) {
    SCOPED_TRACE("shift " + std::to_string(shift));
    const std::string p = "S" + std::to_string(shift) + "-";
    std::string csv = "external_ref,full_name,host_country,lat,lon\r\n";
    csv += p + "pad," + std::string(shift + 1, 'p') + ",JPN,35,139\r\n";  // row 1
    for (int i = 0; i < 12; ++i) {                                        // rows 2-13
      const std::string name = "Santos, \"Ria\"" + std::string(i * 3, '"') + " Maria";
      csv += p + "q" + std::to_string(i) + "," + quote(name) + ",JPN,35,139\r\n";
      names[p + "q" + std::to_string(i)] = name;
    }
    csv += p + "crlf," + quote("Line\r\nbreak, two") + ",JPN,35,139\r\n";  // row 14
    const std::string fixed = ",JPN,35,139\r\n";
    const std::string exact_ref = p + "exact,";
    const std::string exact_name(120 - exact_ref.size() - fixed.size(), 'e');
    csv += exact_ref + exact_name + fixed;  // row 15: 120 bytes
    names[p + "exact"] = exact_name;
    csv += p + "over," + std::string(120 - (p.size() + 5) - fixed.size() + 1, 'o') + fixed;  // row 16: 121
    csv += p + "long," + quote(std::string(300, 'l') + "\r\n" + std::string(300, 'l')) + fixed;  // row 17
    csv += p + "after,,JPN,35,139\n";                                                            // row 18
    names[p + "after"] = "";
    csv += p + "open,\"Santos, Maria,JPN,35,139\r\n";  // row 19: the quote never closes
    std::istringstream in(csv);
    auto report = ImportRegistrants(*db_, token_, in, RegistryFormat::kCsv, keys_, clock_, options);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->imported, 15);
    std::vector<std::string> errors;
    for (const auto& e : report->errors)
      errors.push_back(std::to_string(e.row) + ":" + e.field + ":" + e.reason);
    EXPECT_EQ(errors, (std::vector<std::string>{"14:full_name:must not contain control characters",
                                                "16::the record is longer than 120 bytes",
                                                "17::the record is longer than 120 bytes",
                                                "19::unterminated quoted field"}));
  }
  const auto stored = RegistrantsByRef();
  EXPECT_EQ(stored.size(), 48u * 15);
  for (const auto& [ref, name] : names) {
    auto it = stored.find(ref);
    ASSERT_NE(it, stored.end()) << ref;
    EXPECT_EQ(it->second.full_name, name) << ref;
  }
}

// A quoted cell of the longest full_name (200 bytes once its doubled
// quotes are undone) is accepted; one byte more is refused. A cell that is
// not its column's type is the row's error before any other check, as it
// was when rows went through JSON (external_ref is missing here too).
TEST_F(RegistryTest, CsvCellOfTheMaximumLengthAndCellTypeErrorsFirst) {
  const std::string longest = std::string(100, '"') + std::string(100, 'n');
  const std::string quoted_longest = "\"" + std::string(200, '"') + std::string(100, 'n') + "\"";
  std::istringstream in(
      "external_ref,full_name,host_country,lat,lon,household_size\n"
      "M1," +
      quoted_longest + ",JPN,35,139,\n" + "M2," + quoted_longest.substr(0, quoted_longest.size() - 1) +
      "n\",JPN,35,139,\n" + ",,JPN,north,139,\n" + "M4,,JPN,35,139,2.5\n");
  auto report = ImportRegistrants(*db_, token_, in, RegistryFormat::kCsv, keys_, clock_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->imported, 1);
  std::vector<std::string> errors;
  for (const auto& e : report->errors)
    errors.push_back(std::to_string(e.row) + ":" + e.field + ":" + e.reason);
  EXPECT_EQ(errors,
            (std::vector<std::string>{"2:full_name:must be at most 200 bytes", "3:lat:must be a number",
                                      "4:household_size:must be a whole number"}));
  const auto stored = RegistrantsByRef();
  ASSERT_EQ(stored.count("M1"), 1u);
  EXPECT_EQ(stored.at("M1").full_name, longest);
}

// The CSV columns are the registrant fields' names (the names errors
// give), so an import row and a JSON body report the same field.
TEST(RegistrantFieldTest, NamesAreTheCsvColumnsAndTheErrorFields) {
  const auto& columns = RegistryCsvColumns();
  for (size_t i = 0; i < kRegistrantFieldCount; ++i) {
    const auto field = static_cast<RegistrantField>(i);
    const std::string_view name = RegistrantFieldName(field);
    EXPECT_NE(std::find(columns.begin(), columns.end(), name), columns.end()) << name;
    EXPECT_EQ(RegistrantFieldNamed(name), field) << name;
  }
  EXPECT_EQ(RegistrantFieldName(RegistrantField::kExternalRef), "external_ref");
  EXPECT_EQ(RegistrantFieldName(RegistrantField::kPlaceCountry), "place.country");
  EXPECT_EQ(RegistrantFieldName(RegistrantField::kHouseholdMembers), "household.members");
  EXPECT_EQ(RegistrantFieldName(RegistrantField::kEmergencyContactEmail), "emergency_contact.email");
  EXPECT_EQ(RegistrantFieldName(RegistrantField::kConsentNoticeVersion), "consent.notice_version");
  EXPECT_EQ(RegistrantFieldName(RegistrantField::kRetentionUntil), "retention_until");
  EXPECT_EQ(RegistrantFieldGroup(RegistrantField::kContactPhone), RegistrantGroup::kContact);
  EXPECT_EQ(RegistrantFieldGroup(RegistrantField::kLanguages), std::nullopt);
  EXPECT_EQ(RegistrantFieldNamed("immigration_status"), std::nullopt);
}

TEST_F(RegistryTest, NdjsonImportValidatesEachLine) {
  std::istringstream in(R"({"external_ref":"n1","host_country":"JPN","lat":1,"lon":2})"
                        "\n\n"
                        R"({"external_ref":"n2","host_country":"JPN","lat":1,"lon":2,"visa_status":"x"})"
                        "\n"
                        R"({"external_ref":)"
                        "\n");
  auto report = ImportRegistrants(*db_, token_, in, RegistryFormat::kNdjson, keys_, clock_);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->imported, 1);
  EXPECT_EQ(report->rejected, 2);
  ASSERT_EQ(report->errors.size(), 2u);
  EXPECT_EQ(report->errors[0].row, 3);
  EXPECT_EQ(report->errors[0].field, "visa_status");
  EXPECT_EQ(report->errors[1].row, 4);
  EXPECT_EQ(report->errors[1].reason.rfind("malformed JSON", 0), 0u);
}

TEST_F(RegistryTest, RetentionPurgesExpiredRecordsWithAuditAndDeleteChanges) {
  Registrant keep = Parse(R"({"external_ref":"keep","host_country":"JPN","lat":1,"lon":2,
                               "retention_until":"2024-06-01"})");
  Registrant expire = Parse(R"({"external_ref":"expire","host_country":"JPN","lat":1,"lon":2,
                                 "retention_until":"2024-01-01"})");
  auto kept = InsertRegistrant(*db_, keep, keys_, access_, clock_);
  auto expired = InsertRegistrant(*db_, expire, keys_, access_, clock_);
  EXPECT_EQ(*PurgeExpiredRegistrants(*db_, clock_), 0);
  clock_.Set(DaysFromCivil(2024, 1, 1) * 86'400'000 + 3'600'000);  // on the date itself: kept
  EXPECT_EQ(*PurgeExpiredRegistrants(*db_, clock_), 0);
  clock_.Set(DaysFromCivil(2024, 1, 2) * 86'400'000);
  EXPECT_EQ(*PurgeExpiredRegistrants(*db_, clock_, /*batch=*/1), 1);
  EXPECT_EQ(GetRegistrant(*db_, "PHL", expired->id, nullptr, access_, clock_).status().code(),
            StatusCode::kNotFound);
  EXPECT_TRUE(GetRegistrant(*db_, "PHL", kept->id, nullptr, access_, clock_).ok());
  auto sent = Outbox();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].registry_change().kind(), v1::RegistryChange::KIND_DELETE);
  EXPECT_EQ(sent[2].registry_change().location().registrant_id(), expired->id);
  auto q = db_->Prepare("SELECT actor, subject, purpose FROM audit_log WHERE action = 'registrant.purge'");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "system:retention");
  EXPECT_EQ(q->ColumnText(1), expired->id);
  EXPECT_EQ(q->ColumnText(2), "retention");
}

int64_t CountRows(Db& db, const std::string& sql) {
  auto q = db.Prepare(sql);
  EXPECT_TRUE(q.ok());
  if (!q.ok() || !*q->Step()) return -1;
  return q->ColumnInt(0);
}

// A bulk import covers its rows with a few retention cohorts (not an index
// entry per row); the purge walks a due cohort in steps of `batch` rows and
// removes exactly the expired rows, whatever their order in it.
TEST_F(RegistryTest, RetentionCohortsOfAnImportPurgeExactlyTheExpiredRows) {
  std::string csv = "external_ref,host_country,lat,lon,retention_until\n";
  for (int i = 0; i < 40; ++i) {
    csv += "R" + std::to_string(i) + ",JPN,35,139," + (i % 3 == 0 ? "2024-01-01" : "2030-01-01") + "\n";
  }
  std::istringstream in(csv);
  ImportOptions options;
  options.batch_rows = 7;
  options.commit_rows = 14;
  auto report = ImportRegistrants(*db_, token_, in, RegistryFormat::kCsv, keys_, clock_, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->imported, 40);
  // Two dates, one cohort per date per transaction (three transactions).
  EXPECT_EQ(CountRows(*db_, "SELECT count(*) FROM retention_cohorts"), 6);
  clock_.Set(DaysFromCivil(2024, 1, 2) * 86'400'000);
  EXPECT_EQ(*PurgeExpiredRegistrants(*db_, clock_, /*batch=*/4), 14);
  EXPECT_EQ(CountRows(*db_, "SELECT count(*) FROM registrants"), 26);
  EXPECT_EQ(CountRows(*db_, "SELECT count(*) FROM registrants WHERE retention_until < '2024-01-02'"), 0);
  EXPECT_EQ(CountRows(*db_, "SELECT count(*) FROM retention_cohorts WHERE retention_until < '2024-01-02'"), 0);
  EXPECT_EQ(CountRows(*db_, "SELECT count(*) FROM audit_log WHERE action = 'registrant.purge'"), 14);
  EXPECT_EQ(*PurgeExpiredRegistrants(*db_, clock_), 0);
}

// An update that moves a row's retention date: kept past the old date when
// extended, purged at the new date when shortened.
TEST_F(RegistryTest, AnUpdatedRetentionDateIsTheOneThePurgeKeeps) {
  auto extended = InsertRegistrant(*db_, Parse(R"({"external_ref":"ext","host_country":"JPN","lat":1,"lon":2,
                                                   "retention_until":"2024-01-01"})"),
                                   keys_, access_, clock_);
  auto shortened = InsertRegistrant(*db_, Parse(R"({"external_ref":"short","host_country":"JPN","lat":1,"lon":2,
                                                    "retention_until":"2030-01-01"})"),
                                    keys_, access_, clock_);
  ASSERT_TRUE(extended.ok() && shortened.ok());
  auto set_date = [&](const std::string& id, const std::string& date) {
    return UpdateRegistrant(
        *db_, "PHL", id,
        [&](const Registrant& r) -> Result<Registrant> {
          Registrant next = r;
          next.retention_until = date;
          return next;
        },
        keys_, access_, clock_);
  };
  ASSERT_TRUE(set_date(extended->id, "2026-01-01").ok());
  ASSERT_TRUE(set_date(shortened->id, "2025-01-01").ok());
  clock_.Set(DaysFromCivil(2024, 6, 1) * 86'400'000);
  EXPECT_EQ(*PurgeExpiredRegistrants(*db_, clock_), 0);  // "ext" outlives its first date
  clock_.Set(DaysFromCivil(2025, 6, 1) * 86'400'000);
  EXPECT_EQ(*PurgeExpiredRegistrants(*db_, clock_), 1);
  EXPECT_EQ(GetRegistrant(*db_, "PHL", shortened->id, nullptr, access_, clock_).status().code(),
            StatusCode::kNotFound);
  clock_.Set(DaysFromCivil(2026, 6, 1) * 86'400'000);
  EXPECT_EQ(*PurgeExpiredRegistrants(*db_, clock_), 1);
  EXPECT_EQ(CountRows(*db_, "SELECT count(*) FROM registrants"), 0);
  EXPECT_EQ(CountRows(*db_, "SELECT count(*) FROM retention_cohorts WHERE retention_until < '2026-06-01'"), 0);
}

// A database from before the cohorts (rows, the retention index) gets one
// cohort per (date, state) and loses the index; the purge then works as before.
TEST_F(RegistryTest, RowsFromBeforeRetentionCohortsAreCoveredByTheMigration) {
  for (const char* ref : {"a", "b", "c"}) {
    ASSERT_TRUE(InsertRegistrant(*db_,
                                 Parse(std::string(R"({"external_ref":")") + ref +
                                       R"(","host_country":"JPN","lat":1,"lon":2,"retention_until":")" +
                                       (std::string(ref) == "b" ? "2030-01-01" : "2024-01-01") + "\"}"),
                                 keys_, access_, clock_)
                    .ok());
  }
  // Back to the schema version before the cohorts: no cohorts, the index
  // back, and without the one migration after them (alerts.alert).
  const int64_t version = CountRows(*db_, "PRAGMA user_version");
  ASSERT_TRUE(db_->Exec("DROP TABLE retention_cohorts; CREATE INDEX registrants_by_retention ON "
                        "registrants(retention_until); ALTER TABLE alerts DROP COLUMN alert; "
                        "PRAGMA user_version = " +
                        std::to_string(version - 2))
                  .ok());
  ASSERT_TRUE(MigrateGatewayDb(*db_).ok());
  EXPECT_EQ(CountRows(*db_, "PRAGMA user_version"), version);
  EXPECT_EQ(CountRows(*db_, "SELECT count(*) FROM retention_cohorts"), 2);
  EXPECT_EQ(CountRows(*db_, "SELECT count(*) FROM pragma_index_list('registrants') WHERE name = "
                            "'registrants_by_retention'"),
            0);
  clock_.Set(DaysFromCivil(2024, 1, 2) * 86'400'000);
  EXPECT_EQ(*PurgeExpiredRegistrants(*db_, clock_, /*batch=*/1), 2);
  EXPECT_EQ(CountRows(*db_, "SELECT count(*) FROM registrants WHERE external_ref = 'b'"), 1);
}

TEST_F(RegistryTest, ListTokensShowsStateRoleAndRevocationButNoSecret) {
  auto a = CreateToken(*db_, "PHL", Role::kRegistrar, clock_);
  clock_.Advance(1);
  ASSERT_TRUE(CreateToken(*db_, "IND", Role::kOperator, clock_).ok());
  auto phl = *ListTokens(*db_, "PHL");
  ASSERT_EQ(phl.size(), 1u);
  EXPECT_EQ(phl[0].role, Role::kRegistrar);
  EXPECT_EQ(phl[0].revoked_ms, 0);
  ASSERT_TRUE(RevokeToken(*db_, phl[0].id, clock_).ok());
  EXPECT_EQ(ListTokens(*db_, "PHL")->at(0).revoked_ms, clock_.NowMs());
  EXPECT_EQ(ListTokens(*db_, "")->size(), 2u);
  EXPECT_EQ(Authenticate(*db_, *a).status().code(), StatusCode::kUnauthenticated);
}

TEST(RateLimiterTest, BurstThenSteadyRateWithRetryAfter) {
  FakeClock clock;
  RateLimiter limiter(/*rate_per_s=*/2, /*burst=*/3, clock);
  EXPECT_EQ(limiter.Take("t"), 0);
  EXPECT_EQ(limiter.Take("t"), 0);
  EXPECT_EQ(limiter.Take("t"), 0);
  EXPECT_EQ(limiter.Take("t"), 500);    // one token per 500 ms
  EXPECT_EQ(limiter.Take("other"), 0);  // buckets are per key
  clock.Advance(250);
  EXPECT_EQ(limiter.Take("t"), 250);
  clock.Advance(250);
  EXPECT_EQ(limiter.Take("t"), 0);
  EXPECT_EQ(limiter.Take("t"), 500);
}

TEST(CivilDateTest, DatesAndTimestampsRoundTrip) {
  EXPECT_EQ(FormatIsoDate(DaysFromCivil(2024, 2, 29)), "2024-02-29");
  EXPECT_EQ(FormatIsoDate(DaysFromCivil(1970, 1, 1)), "1970-01-01");
  EXPECT_EQ(FormatIsoDate(DaysFromCivil(9999, 12, 31)), "9999-12-31");
  EXPECT_EQ(FormatIsoDate(DaysFromCivil(10000, 1, 1)), "10000-01-01");
  EXPECT_EQ(FormatIsoDate(DaysFromCivil(812, 10, 5)), "0812-10-05");
  EXPECT_FALSE(ParseIsoDate("2023-02-29"));
  EXPECT_EQ(*ParseIsoDate("1970-01-02"), 1);
  EXPECT_EQ(*ParseRfc3339("2023-11-14T22:13:20.000Z"), 1'700'000'000'000);
  EXPECT_EQ(*ParseRfc3339("2023-11-15T00:13:20+02:00"), 1'700'000'000'000);
  EXPECT_FALSE(ParseRfc3339("2023-11-14 22:13:20"));
}

// Not an assertion: prints the bulk import rate of 100k generated rows
// (validation + encryption + change stream + audit), for the report.
TEST_F(RegistryTest, PrintsImportRateOf100kCsvRows) {
  std::string csv =
      "external_ref,full_name,host_country,lat,lon,household.members,languages,contact.email,"
      "contact.phone,vulnerabilities\n";
  for (int i = 0; i < 100'000; ++i) {
    csv += "R" + std::to_string(i) + ",Person " + std::to_string(i) + ",JPN," + std::to_string(30 + i % 10) +
           "." + std::to_string(i % 997) + ",139.5,18-59:PHL,fil;en,p" + std::to_string(i) +
           "@example.ph,+6391712" + std::to_string(10000 + i % 89999) + "," + (i % 7 == 0 ? "child" : "") +
           "\n";
  }
  std::istringstream in(csv);
  auto start = std::chrono::steady_clock::now();
  auto report = ImportRegistrants(*db_, token_, in, RegistryFormat::kCsv, keys_, clock_);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->imported, 100'000);
  std::printf("[ measure ] imported 100000 CSV rows in %.2f s: %.0f rows/s\n", seconds, 100'000 / seconds);
}

}  // namespace
}  // namespace amparo::gateway
