#include "common/config.h"

#include <gtest/gtest.h>

namespace amparo {
namespace {

TEST(ConfigTest, EmptyFileGivesDocumentedDefaults) {
  auto c = Config::Parse("", "/srv/amparo");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->data_dir, "/srv/amparo/data");
  EXPECT_EQ(c->rules.inbox, "ipc:///srv/amparo/run/rules.ipc");
  EXPECT_EQ(c->gateway.listen, "127.0.0.1:8080");
  EXPECT_EQ(c->notify.max_attempts, 12);
  EXPECT_DOUBLE_EQ(c->rules.earthquake_min_mmi, 6.0);
  EXPECT_EQ(c->ingest.spool_dir, "/srv/amparo/data/spool");
}

TEST(ConfigTest, RegistrySyncSettingsAreKeysWithBounds) {
  auto defaults = Config::Parse("", "/x");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->rules.registry_gap_timeout_ms, 10'000);
  EXPECT_EQ(defaults->rules.registry_probe_interval_ms, 60'000);
  auto c = Config::Parse(
      "[rules]\nregistry_gap_timeout_ms = 2500\nregistry_snapshot_timeout_ms = 120000\n"
      "registry_probe_interval_ms = 5000\nregistry_max_ahead_ranges = 64\n",
      "/x");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->rules.registry_gap_timeout_ms, 2500);
  EXPECT_EQ(c->rules.registry_snapshot_timeout_ms, 120'000);
  EXPECT_EQ(c->rules.registry_probe_interval_ms, 5000);
  EXPECT_EQ(c->rules.registry_max_ahead_ranges, 64);
  EXPECT_EQ(Config::Parse("[rules]\nregistry_probe_interval_ms = 10\n", "/x").status().ToString(),
            "INVALID_ARGUMENT: rules.registry_probe_interval_ms: must be between 1000 and 86400000");
}

TEST(ConfigTest, GroupCommitIntervalsAreKeysWithBounds) {
  auto defaults = Config::Parse("", "/x");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->notify.outcome_commit_interval_ms, 20);
  EXPECT_EQ(defaults->gateway.inbox_commit_interval_ms, 20);
  auto c = Config::Parse(
      "[notify]\noutcome_commit_interval_ms = 0\n[gateway]\ninbox_commit_interval_ms = 250\n", "/x");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->notify.outcome_commit_interval_ms, 0);
  EXPECT_EQ(c->gateway.inbox_commit_interval_ms, 250);
  EXPECT_EQ(Config::Parse("[gateway]\ninbox_commit_interval_ms = 1001\n", "/x").status().ToString(),
            "INVALID_ARGUMENT: gateway.inbox_commit_interval_ms: must be between 0 and 1000");
  EXPECT_EQ(Config::Parse("[notify]\noutcome_commit_interval_ms = -1\n", "/x").status().ToString(),
            "INVALID_ARGUMENT: notify.outcome_commit_interval_ms: must be between 0 and 1000");
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  auto c = Config::Parse("[notify]\nmax_attempt = 3\n", "/x");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().field(), "notify.max_attempt");
  EXPECT_EQ(c.status().message(), "unknown key");
}

TEST(ConfigTest, OutOfRangeValueIsNamedWithReason) {
  auto c = Config::Parse("[notify]\nmax_attempts = 0\n", "/x");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().ToString(), "INVALID_ARGUMENT: notify.max_attempts: must be between 1 and 1000");
}

TEST(ConfigTest, WrongTypeIsNamed) {
  auto c = Config::Parse("[gateway]\nlisten = 8080\n", "/x");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().field(), "gateway.listen");
}

TEST(ConfigTest, PollSourcesAreValidated) {
  auto good = Config::Parse(
      "[[ingest.poll]]\nname = \"usgs\"\nurl = \"http://127.0.0.1:9/all_day.geojson\"\ninterval_s = 30\n", "/x");
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  ASSERT_EQ(good->ingest.poll.size(), 1u);
  EXPECT_EQ(good->ingest.poll[0].interval_s, 30);
  auto bad = Config::Parse("[[ingest.poll]]\nname = \"usgs\"\nurl = \"ftp://x\"\n", "/x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().field(), "ingest.poll[0].url");
}

TEST(ConfigTest, SyntaxErrorNamesLine) {
  auto c = Config::Parse("log_level = \"info\"\n[rules\n", "/x");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("line 2"), std::string::npos) << c.status().message();
}

TEST(ConfigTest, MissingFileIsNotFound) {
  auto c = Config::Load("/nonexistent/amparo.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace amparo
