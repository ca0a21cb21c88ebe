// The spool routes every file by its content: CAP, GDACS and USGS files
// dropped in the spool become events for rules, in one transaction each.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <optional>

#include "amparo/v1/envelope.pb.h"
#include "common/link.h"
#include "common/testing.h"
#include "services/ingest/spool.h"
#include "services/ingest/test_fixtures.h"

namespace amparo::ingest {
namespace {

namespace fs = std::filesystem;
using testing_support::Info;
using testing_support::MinimalCap;
using testing_support::ReadFixture;

class SpoolRoutingTest : public ::testing::Test {
 protected:
  SpoolRoutingTest() {
    db_.emplace(std::move(*Db::Open(dir_ / "ingest.db")));
    EXPECT_TRUE(PrepareIngestDb(*db_).ok());
    options_.spool_dir = dir_ / "spool";
  }
  void Start() {
    spool_.emplace(*db_, options_, clock_);
    EXPECT_TRUE(spool_->CreateDirectories().ok());
  }
  FileOutcome Process(const std::string& name, const std::string& content) {
    fs::path target = options_.spool_dir / name;
    std::ofstream(target, std::ios::binary) << content;
    auto outcome = spool_->ProcessFile(target);
    EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    return outcome.ok() ? *outcome : FileOutcome{};
  }
  std::vector<v1::Envelope> Outbox() { return *PendingOutbound(*db_, "rules"); }

  testing::TempDir dir_;
  FakeClock clock_{1'800'000'000'000};
  std::optional<Db> db_;
  SpoolOptions options_;
  std::optional<SpoolProcessor> spool_;
};

TEST_F(SpoolRoutingTest, CapFileBecomesAnEventAndItsUpdateARevision) {
  Start();
  const std::string polygon = "<polygon>10,10 10,11 11,11 10,10</polygon>";
  FileOutcome first = Process("alert.xml", MinimalCap("Actual", "Alert", "", Info(polygon), "FL-1"));
  EXPECT_TRUE(first.accepted);
  EXPECT_EQ(first.format, "cap");
  EXPECT_EQ(first.events_sent, 1);
  EXPECT_TRUE(fs::exists(options_.spool_dir / "processed" / "alert.xml"));
  // Replaying the same message sends nothing.
  FileOutcome replay = Process("alert-again.xml", MinimalCap("Actual", "Alert", "", Info(polygon), "FL-1"));
  EXPECT_EQ(replay.events_sent, 0);
  EXPECT_EQ(replay.events_unchanged, 1);
  // The Update, sent later, references FL-1.
  std::string update = MinimalCap("Actual", "Update",
                                  "<references>ops@example.org,FL-1,2024-05-01T10:00:00+02:00</references>",
                                  Info(polygon), "FL-2");
  update.replace(update.find("10:00:00+02:00</sent>"), 14, "11:00:00+02:00");
  FileOutcome second = Process("update.xml", update);
  EXPECT_EQ(second.events_sent, 1);

  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 2u);
  const v1::CrisisEvent& alert = outbox[0].crisis_event();
  EXPECT_EQ(alert.event_id(), "cap:ops@example.org:FL-1");
  EXPECT_EQ(alert.hazard(), v1::HAZARD_KIND_FLOOD);
  EXPECT_EQ(alert.areas(0).polygons(0).vertices_size(), 4);
  EXPECT_EQ(alert.received_ms(), 1'800'000'000'000);
  const v1::CrisisEvent& revision = outbox[1].crisis_event();
  EXPECT_EQ(revision.event_id(), "cap:ops@example.org:FL-1");
  EXPECT_EQ(revision.msg_type(), v1::MESSAGE_TYPE_UPDATE);
  EXPECT_GT(revision.revision(), alert.revision());
  ASSERT_EQ(revision.references_size(), 1) << "the spool adds no second reference to CAP's own";
  EXPECT_EQ(revision.references(0).source_id(), "ops@example.org:FL-1");
}

TEST_F(SpoolRoutingTest, ExerciseFileNameAndCapStatus) {
  Start();
  Process("drill.exercise.xml", MinimalCap("Actual", "Alert", "", Info(""), "EX-1"));
  Process("test.xml", MinimalCap("Test", "Alert", "", Info(""), "T-1"));
  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 2u);
  EXPECT_EQ(outbox[0].crisis_event().status(), v1::EVENT_STATUS_EXERCISE);
  EXPECT_EQ(outbox[1].crisis_event().status(), v1::EVENT_STATUS_TEST);
  EXPECT_TRUE(IsExerciseFileName("drill.exercise.xml"));
  EXPECT_FALSE(IsExerciseFileName("exercise.xml"));
}

TEST_F(SpoolRoutingTest, HostileAndInvalidFilesAreRejectedWithTheirReason) {
  Start();
  FileOutcome xee = Process("xee.cap", ReadFixture("cap/google-cap-library/xee.cap"));
  EXPECT_FALSE(xee.accepted);
  ASSERT_EQ(xee.problems.size(), 1u);
  EXPECT_EQ(xee.problems[0], "xml: DOCTYPE declares entities: refused (external entity attacks)");
  EXPECT_TRUE(fs::exists(options_.spool_dir / "rejected" / "xee.cap"));
  EXPECT_TRUE(fs::exists(options_.spool_dir / "rejected" / "xee.cap.error"));
  EXPECT_TRUE(Outbox().empty());
}

TEST_F(SpoolRoutingTest, ValidationModeGlobalAndPerSource) {
  const std::string swapped = ReadFixture("cap/kde-kweathercore/thunderstorm.xml");
  options_.validation = ValidationMode::kStrict;
  options_.source_validation["kweather"] = ValidationMode::kLenient;
  Start();
  FileOutcome strict = Process("other-1.xml", swapped);
  EXPECT_FALSE(strict.accepted);
  FileOutcome lenient = Process("kweather-1700000000000.json", swapped);
  EXPECT_TRUE(lenient.accepted);
  ASSERT_FALSE(lenient.warnings.empty());
  EXPECT_EQ(lenient.warnings[0].rfind("value-valuename-order", 0), 0u);
}

TEST_F(SpoolRoutingTest, GdacsFeedsShareOneEventAcrossFormats) {
  Start();
  EXPECT_EQ(Process("ep1.json", ReadFixture("gdacs/api-monty/1102983-1-geteventdata-source.json")).events_sent, 1);
  EXPECT_EQ(Process("ep2.json", ReadFixture("gdacs/api-monty/1102983-2-geteventdata-source.json")).events_sent, 1);
  auto outbox = Outbox();
  ASSERT_EQ(outbox.size(), 2u);
  EXPECT_EQ(outbox[1].crisis_event().event_id(), "gdacs:FL1102983");
  EXPECT_EQ(outbox[1].crisis_event().msg_type(), v1::MESSAGE_TYPE_UPDATE);
}

TEST_F(SpoolRoutingTest, UsgsStillRoutes) {
  Start();
  FileOutcome usgs = Process("all_day.json", ReadFixture("usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json"));
  EXPECT_TRUE(usgs.accepted);
  EXPECT_EQ(usgs.format, "usgs-geojson");
  EXPECT_EQ(usgs.events_sent, 188);
}

}  // namespace
}  // namespace amparo::ingest
