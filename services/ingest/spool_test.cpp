#include "services/ingest/spool.h"

#include <gtest/gtest.h>

#include "common/link.h"

#include <chrono>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "amparo/v1/envelope.pb.h"
#include "common/testing.h"

namespace amparo::ingest {
namespace {

namespace fs = std::filesystem;

const fs::path kSummary =
    fs::path(AMPARO_FIXTURES_DIR) / "usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json";

std::string ReadText(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A one-feature collection for event `id` at revision `updated`.
std::string OneEvent(const std::string& id, int64_t updated, const std::string& status = "reviewed",
                     const std::string& ids = "") {
  return R"({"type":"FeatureCollection","features":[{"type":"Feature","id":")" + id +
         R"(","geometry":{"type":"Point","coordinates":[139.7,35.7,30]},)" +
         R"("properties":{"mag":6.1,"time":1700000000000,"updated":)" + std::to_string(updated) +
         R"(,"status":")" + status + R"(","type":"earthquake","ids":")" + ids +
         R"(","title":"M 6.1 - near Tokyo"}}]})";
}

class SpoolTest : public ::testing::Test {
 protected:
  SpoolTest() {
    db_.emplace(std::move(*Db::Open(dir_ / "ingest.db")));
    EXPECT_TRUE(PrepareIngestDb(*db_).ok());
    options_.spool_dir = dir_ / "spool";
    spool_.emplace(*db_, options_, clock_);
    EXPECT_TRUE(spool_->CreateDirectories().ok());
  }

  fs::path Drop(const std::string& name, const std::string& content) {
    fs::path tmp = options_.spool_dir / "tmp" / name;
    {
      std::ofstream out(tmp, std::ios::binary);
      out << content;
    }
    fs::path target = options_.spool_dir / name;
    fs::rename(tmp, target);
    // Distinct, increasing mtimes make "oldest first" deterministic.
    fs::last_write_time(
        target, fs::file_time_type::clock::now() - std::chrono::hours(1) + std::chrono::seconds(++drops_));
    return target;
  }

  std::vector<FileOutcome> Scan() {
    auto outcomes = spool_->ScanOnce();
    EXPECT_TRUE(outcomes.ok()) << outcomes.status().ToString();
    return outcomes.ok() ? *outcomes : std::vector<FileOutcome>{};
  }

  // Envelopes waiting in the outbox for `peer`, in order.
  std::vector<v1::Envelope> Outbox(const std::string& peer = "rules") { return *PendingOutbound(*db_, peer); }

  testing::TempDir dir_;
  FakeClock clock_{1'800'000'000'000};
  std::optional<Db> db_;
  SpoolOptions options_;
  std::optional<SpoolProcessor> spool_;
  int drops_ = 0;
};

TEST_F(SpoolTest, AfterFileRunsOnceEachFileCommittedWithItsEventsInTheOutbox) {
  Drop("a.json", OneEvent("us1", 1000));
  Drop("b.json", OneEvent("us2", 1000));
  std::vector<std::pair<size_t, size_t>> seen;  // (outbox size, events of the file) at each call
  auto outcomes = spool_->ScanOnce([&](const FileOutcome&) {
    // Called after the file's commit: a read sees its events.
    seen.emplace_back(Outbox().size(), seen.size() + 1);
  });
  ASSERT_TRUE(outcomes.ok());
  ASSERT_EQ(outcomes->size(), 2u);
  EXPECT_EQ(seen, (std::vector<std::pair<size_t, size_t>>{{1, 1}, {2, 2}}));
}

// The commit hooks: the work before the commit is part of the file's
// transaction (its failure keeps neither the events nor the work, and the
// file stays for the next scan); the one after runs once it committed.
TEST_F(SpoolTest, CommitHooksRunInsideEachFilesTransactionAndAfterItsCommit) {
  ASSERT_TRUE(db_->Exec("CREATE TABLE extra(file_events INTEGER)").ok());
  bool fail = true;
  int after = 0;
  spool_->SetCommitHooks(
      [&]() -> Status {
        auto q = db_->Prepare("INSERT INTO extra SELECT count(*) FROM link_outbox");
        AMPARO_RETURN_IF_ERROR(q->Run());
        return fail ? Unavailable("extra work failed") : Status::Ok();
      },
      [&] { ++after; });
  const fs::path file = Drop("a.json", OneEvent("us1", 1000));
  auto failed = spool_->ProcessFile(file);
  EXPECT_FALSE(failed.ok());
  EXPECT_TRUE(fs::exists(file));
  EXPECT_TRUE(Outbox().empty());
  EXPECT_EQ(after, 0);
  fail = false;
  ASSERT_EQ(Scan().size(), 1u);
  EXPECT_EQ(Outbox().size(), 1u);
  EXPECT_EQ(after, 1);
  auto extra = db_->Prepare("SELECT group_concat(file_events) FROM extra");
  ASSERT_TRUE(*extra->Step());
  EXPECT_EQ(extra->ColumnText(0), "1");  // the failed file's row rolled back; this one saw its event
}

TEST_F(SpoolTest, AcceptedFileEnqueuesOneEnvelopePerEventForRulesAndMovesToProcessed) {
  Drop("all_day.json", ReadText(kSummary));
  auto outcomes = Scan();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_TRUE(outcomes[0].accepted);
  EXPECT_EQ(outcomes[0].events_sent, 188);
  EXPECT_TRUE(outcomes[0].problems.empty());

  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 188u);
  std::set<std::string> message_ids, event_ids;
  const v1::Envelope* japan = nullptr;
  for (const auto& env : outbox) {
    message_ids.insert(env.message_id());
    event_ids.insert(env.crisis_event().event_id());
    EXPECT_EQ(env.producer(), "amparo-ingest");
    EXPECT_EQ(env.schema_version(), 1u);
    EXPECT_EQ(env.sent_ms(), 1'800'000'000'000);
    ASSERT_TRUE(env.has_crisis_event());
    EXPECT_EQ(env.crisis_event().msg_type(), v1::MESSAGE_TYPE_ALERT);
    EXPECT_EQ(env.crisis_event().status(), v1::EVENT_STATUS_ACTUAL);
    EXPECT_EQ(env.crisis_event().received_ms(), 1'800'000'000'000);
    if (env.crisis_event().event_id() == "usgs:us2000hf24") japan = &env;
  }
  EXPECT_EQ(message_ids.size(), 188u);
  EXPECT_EQ(event_ids.size(), 188u);
  ASSERT_NE(japan, nullptr);
  EXPECT_DOUBLE_EQ(japan->crisis_event().metrics().magnitude(), 5.6);
  EXPECT_EQ(japan->crisis_event().revision(), 1537026265040);
  EXPECT_EQ(japan->crisis_event().references_size(), 0);

  EXPECT_FALSE(fs::exists(options_.spool_dir / "all_day.json"));
  EXPECT_TRUE(fs::exists(options_.spool_dir / "processed/all_day.json"));
  EXPECT_FALSE(fs::exists(options_.spool_dir / "processed/all_day.json.error"));
  EXPECT_EQ(spool_->counters().files_accepted, 1u);
  EXPECT_EQ(spool_->counters().events_sent, 188u);
  EXPECT_TRUE(Outbox("notify").empty());
}

TEST_F(SpoolTest, RejectedFileGoesToRejectedWithReasonAndTheNextFileIsProcessed) {
  Drop("broken.json", "{\"type\": \"FeatureCollection\", \"features\": [");
  Drop("good.json", OneEvent("us1", 100));
  auto outcomes = Scan();
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].name, "broken.json");
  EXPECT_FALSE(outcomes[0].accepted);
  EXPECT_TRUE(outcomes[1].accepted);

  EXPECT_TRUE(fs::exists(options_.spool_dir / "rejected/broken.json"));
  EXPECT_EQ(ReadText(options_.spool_dir / "rejected/broken.json.error"),
            "JSON syntax error at line 1, column 44 (byte 43): incomplete JSON\n");
  EXPECT_TRUE(fs::exists(options_.spool_dir / "processed/good.json"));
  ASSERT_EQ(Outbox().size(), 1u);
  EXPECT_EQ(Outbox()[0].crisis_event().event_id(), "usgs:us1");
  EXPECT_EQ(spool_->counters().files_rejected, 1u);
  EXPECT_EQ(spool_->counters().files_accepted, 1u);
}

TEST_F(SpoolTest, WrongTypeAndOversizeFilesAreRejectedWithTheirReason) {
  options_.max_file_bytes = 4096;
  spool_.emplace(*db_, options_, clock_);
  Drop("topo.json", R"({"type":"Topology"})");
  Drop("huge.json", ReadText(kSummary));
  Scan();
  EXPECT_EQ(ReadText(options_.spool_dir / "rejected/topo.json.error"),
            "type: must be \"FeatureCollection\" or \"Feature\", got \"Topology\"\n");
  EXPECT_EQ(ReadText(options_.spool_dir / "rejected/huge.json.error"),
            "ingest.max_file_bytes: file is 204186 bytes, above the limit of 4096 bytes\n");
  EXPECT_TRUE(Outbox().empty());
  EXPECT_EQ(spool_->counters().files_rejected, 2u);
}

TEST_F(SpoolTest, FeatureRejectionsAreListedBesideTheProcessedFile) {
  std::string text = OneEvent("us1", 100);
  std::string bad = OneEvent("us2", 100);
  bad.replace(bad.find("35.7"), 4, "95.5");
  // Splice the bad feature into the first collection: [good, bad].
  const std::string bad_feature = bad.substr(bad.find("[{") + 1, bad.rfind("}]") - bad.find("[{"));
  text.insert(text.rfind("]}"), "," + bad_feature);
  Drop("mixed.json", text);
  auto outcomes = Scan();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_TRUE(outcomes[0].accepted);
  EXPECT_EQ(outcomes[0].events_sent, 1);
  EXPECT_EQ(outcomes[0].features_rejected, 1);
  EXPECT_EQ(ReadText(options_.spool_dir / "processed/mixed.json.error"),
            "features[1].geometry.coordinates: latitude 95.5 out of range -90..90 (id us2)\n");
  EXPECT_EQ(spool_->counters().features_rejected, 1u);
  EXPECT_EQ(Outbox().size(), 1u);
}

TEST_F(SpoolTest, FileWhoseEveryFeatureIsBadIsRejected) {
  std::string bad = OneEvent("us2", 100);
  bad.replace(bad.find("139.7"), 5, "190.0");
  Drop("allbad.json", bad);
  Scan();
  EXPECT_EQ(ReadText(options_.spool_dir / "rejected/allbad.json.error"),
            "features[0].geometry.coordinates: longitude 190.0 out of range -180..180 (id us2)\n");
  EXPECT_TRUE(Outbox().empty());
}

TEST_F(SpoolTest, ReplayingTheSameFileSendsNothingTheSecondTime) {
  const std::string text = ReadText(kSummary);
  Drop("day.json", text);
  Scan();
  ASSERT_EQ(Outbox().size(), 188u);
  Drop("day.json", text);
  auto outcomes = Scan();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_TRUE(outcomes[0].accepted);
  EXPECT_EQ(outcomes[0].events_sent, 0);
  EXPECT_EQ(outcomes[0].events_unchanged, 188);
  EXPECT_EQ(Outbox().size(), 188u);
  // The earlier copy is kept; the replay gets a suffix.
  EXPECT_TRUE(fs::exists(options_.spool_dir / "processed/day.json"));
  EXPECT_TRUE(fs::exists(options_.spool_dir / "processed/day.json.1"));
}

TEST_F(SpoolTest, NewerRevisionIsAnUpdateAndOlderOneIsDropped) {
  Drop("a.json", OneEvent("us1", 100));
  Drop("b.json", OneEvent("us1", 200));
  Drop("c.json", OneEvent("us1", 150));
  Scan();
  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 2u);
  EXPECT_EQ(outbox[0].crisis_event().msg_type(), v1::MESSAGE_TYPE_ALERT);
  EXPECT_EQ(outbox[0].crisis_event().revision(), 100);
  EXPECT_EQ(outbox[1].crisis_event().msg_type(), v1::MESSAGE_TYPE_UPDATE);
  EXPECT_EQ(outbox[1].crisis_event().revision(), 200);
  ASSERT_EQ(outbox[1].crisis_event().references_size(), 1);
  EXPECT_EQ(outbox[1].crisis_event().references(0).source(), "usgs");
  EXPECT_EQ(outbox[1].crisis_event().references(0).source_id(), "us1");
  EXPECT_EQ(spool_->counters().events_unchanged, 1u);
}

TEST_F(SpoolTest, FilesAreTakenOldestFirstNotByName) {
  Drop("z-old.json", OneEvent("us1", 100));
  Drop("a-new.json", OneEvent("us1", 200));
  auto outcomes = Scan();
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].name, "z-old.json");
  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 2u);
  EXPECT_EQ(outbox[1].crisis_event().msg_type(), v1::MESSAGE_TYPE_UPDATE);
}

TEST_F(SpoolTest, DeletedFeatureIsACancelEvenForAnUnseenEvent) {
  Drop("gone.json", OneEvent("us9", 300, "deleted"));
  Scan();
  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 1u);
  EXPECT_EQ(outbox[0].crisis_event().msg_type(), v1::MESSAGE_TYPE_CANCEL);
  ASSERT_EQ(outbox[0].crisis_event().references_size(), 1);
  EXPECT_EQ(outbox[0].crisis_event().references(0).source_id(), "us9");
  // The same deletion again is not news.
  Drop("gone-again.json", OneEvent("us9", 300, "deleted"));
  Scan();
  EXPECT_EQ(Outbox().size(), 1u);
}

TEST_F(SpoolTest, ExerciseFileIsMarkedAndDedupedApartFromRealEvents) {
  Drop("real.json", OneEvent("us1", 100));
  Drop("drill.exercise.json", OneEvent("us1", 100));
  Drop("drill2.exercise.json", OneEvent("us1", 100));
  Scan();
  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 2u);
  EXPECT_EQ(outbox[0].crisis_event().status(), v1::EVENT_STATUS_ACTUAL);
  EXPECT_EQ(outbox[1].crisis_event().status(), v1::EVENT_STATUS_EXERCISE);
  // Same event id, its own history: the exercise is a first ALERT, not an update.
  EXPECT_EQ(outbox[1].crisis_event().event_id(), "usgs:us1");
  EXPECT_EQ(outbox[1].crisis_event().msg_type(), v1::MESSAGE_TYPE_ALERT);
  EXPECT_TRUE(IsExerciseFileName("x.exercise.json"));
  EXPECT_FALSE(IsExerciseFileName("exercise.json.x"));
}

TEST_F(SpoolTest, LaterPreferredIdKeepsTheFirstEventId) {
  Drop("first.json", OneEvent("ci37", 100, "automatic", ",ci37,"));
  Drop("second.json", OneEvent("us100", 200, "reviewed", ",ci37,us100,"));
  Scan();
  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 2u);
  EXPECT_EQ(outbox[1].crisis_event().event_id(), "usgs:ci37");
  EXPECT_EQ(outbox[1].crisis_event().source_id(), "us100");
  EXPECT_EQ(outbox[1].crisis_event().msg_type(), v1::MESSAGE_TYPE_UPDATE);
  EXPECT_EQ(outbox[1].crisis_event().references(0).source_id(), "ci37");
}

TEST_F(SpoolTest, CrashBetweenCommitAndMoveSendsNoDuplicateWhenTheFileIsReadAgain) {
  // processed/ replaced by a dangling symlink: the commit succeeds, the move
  // fails, exactly as if the daemon had died in between.
  fs::remove_all(options_.spool_dir / "processed");
  fs::create_directory_symlink(dir_ / "nowhere", options_.spool_dir / "processed");
  Drop("day.json", ReadText(kSummary));
  EXPECT_TRUE(Scan().empty());
  EXPECT_EQ(Outbox().size(), 188u);
  EXPECT_TRUE(fs::exists(options_.spool_dir / "day.json"));
  EXPECT_EQ(spool_->counters().file_errors, 1u);

  fs::remove(options_.spool_dir / "processed");
  fs::create_directory(options_.spool_dir / "processed");
  auto outcomes = Scan();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].events_sent, 0);
  EXPECT_EQ(outcomes[0].events_unchanged, 188);
  EXPECT_EQ(Outbox().size(), 188u);
  EXPECT_TRUE(fs::exists(options_.spool_dir / "processed/day.json"));
}

TEST_F(SpoolTest, SubdirectoriesDotFilesAndTmpAreIgnored) {
  { std::ofstream(options_.spool_dir / "tmp/partial.json") << OneEvent("us1", 1); }
  { std::ofstream(options_.spool_dir / ".hidden.json") << OneEvent("us2", 1); }
  fs::create_directory(options_.spool_dir / "nested");
  { std::ofstream(options_.spool_dir / "nested/x.json") << OneEvent("us3", 1); }
  EXPECT_TRUE(Scan().empty());
  EXPECT_TRUE(Outbox().empty());
}

TEST_F(SpoolTest, ScanTakesAtMostTheConfiguredNumberOfFiles) {
  options_.max_files_per_scan = 2;
  spool_.emplace(*db_, options_, clock_);
  for (int i = 0; i < 5; ++i) Drop("f" + std::to_string(i) + ".json", OneEvent("us" + std::to_string(i), 1));
  EXPECT_EQ(Scan().size(), 2u);
  EXPECT_EQ(Scan().size(), 2u);
  EXPECT_EQ(Scan().size(), 1u);
  EXPECT_EQ(Outbox().size(), 5u);
}

}  // namespace
}  // namespace amparo::ingest
