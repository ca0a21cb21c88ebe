#include "common/alert_json.h"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace amparo {
namespace {

namespace json = boost::json;

v1::ConsularAlert BaseAlert() {
  v1::ConsularAlert a;
  a.set_alert_id("usgs:us7000abcd/PHL/JPN");
  a.set_incident_id("usgs:us7000abcd");
  a.set_revision(2);
  a.set_state("PHL");
  a.set_host_country("JPN");
  a.set_level(v1::ALERT_LEVEL_WARNING);
  a.set_hazard(v1::HAZARD_KIND_EARTHQUAKE);
  a.set_event_status("Actual");
  a.set_raised_ms(1'700'000'000'000);
  a.mutable_exposure()->set_registrants(12);
  a.mutable_exposure()->set_household_members(30);
  a.mutable_exposure()->set_vulnerable(3);
  return a;
}

json::object Parse(const v1::ConsularAlert& a) { return json::parse(AlertToJson(a)).as_object(); }

TEST(AlertJsonTest, KeepsTheExistingFields) {
  json::object o = Parse(BaseAlert());
  EXPECT_EQ(o.at("alert_id").as_string(), "usgs:us7000abcd/PHL/JPN");
  EXPECT_EQ(o.at("revision").as_int64(), 2);
  EXPECT_EQ(o.at("level").as_string(), "warning");
  EXPECT_EQ(o.at("hazard").as_string(), "earthquake");
  EXPECT_EQ(o.at("raised_at").as_string(), "2023-11-14T22:13:20.000Z");
  EXPECT_TRUE(o.at("event_sent_at").is_null());
  EXPECT_EQ(o.at("exposure").at("registrants").as_int64(), 12);
  EXPECT_EQ(o.at("exposure").at("household_members").as_int64(), 30);
  EXPECT_EQ(o.at("exposure").at("vulnerable").as_int64(), 3);
  EXPECT_TRUE(o.at("registrant_ids").as_array().empty());
  // The older fields come first, in their old order, so consumers that read
  // them positionally (or diff bodies) see no change.
  std::vector<std::string> keys;
  for (const auto& kv : o) keys.emplace_back(kv.key());
  const std::vector<std::string> first = {
      "alert_id", "incident_id", "revision",     "state",         "host_country",  "level",
      "exercise", "cancelled",   "event_status", "hazard",        "headline",      "reason",
      "exposure", "footprint",   "raised_at",    "event_sent_at", "registrant_ids"};
  ASSERT_GE(keys.size(), first.size());
  EXPECT_EQ(std::vector<std::string>(keys.begin(), keys.begin() + first.size()), first);
}

TEST(AlertJsonTest, DefaultsOfTheNewFields) {
  json::object o = Parse(BaseAlert());
  EXPECT_EQ(o.at("phase").as_int64(), 0);
  EXPECT_EQ(o.at("proposed_phase").as_int64(), 0);
  EXPECT_EQ(o.at("lifecycle").as_string(), "unspecified");
  EXPECT_EQ(o.at("policy_rule").as_string(), "");
  EXPECT_EQ(o.at("decision_id").as_string(), "");
  EXPECT_EQ(o.at("notification").as_int64(), 0);
  EXPECT_EQ(o.at("silenced").as_bool(), false);
  EXPECT_EQ(o.at("silence_id").as_string(), "");
  EXPECT_TRUE(o.at("phase_confirmation").is_null());
  EXPECT_TRUE(o.at("sources").as_array().empty());
  EXPECT_TRUE(o.at("exposure").at("by_flag").as_object().empty());
}

TEST(AlertJsonTest, CarriesPhaseLifecycleSilenceAndSources) {
  v1::ConsularAlert a = BaseAlert();
  a.set_proposed_phase(v1::CRISIS_PHASE_RELOCATION);
  a.set_phase(v1::CRISIS_PHASE_RESTRICTION);
  a.set_lifecycle(v1::ALERT_LIFECYCLE_ESCALATED);
  a.set_policy_rule("PHL:vulnerable-child");
  a.set_decision_id("dec-42");
  a.set_notification(3);
  a.set_silenced(true);
  a.set_silence_id("0123456789abcdef0123456789abcdef");
  a.mutable_phase_confirmation()->set_phase(v1::CRISIS_PHASE_RESTRICTION);
  a.mutable_phase_confirmation()->set_by("tok1");
  a.mutable_phase_confirmation()->set_at_ms(1'700'000'060'000);
  a.mutable_phase_confirmation()->set_reason("embassy confirms");
  a.add_sources("gdacs");
  a.add_sources("usgs");
  json::object o = Parse(a);
  EXPECT_EQ(o.at("phase").as_int64(), 2);
  EXPECT_EQ(o.at("proposed_phase").as_int64(), 3);
  EXPECT_EQ(o.at("lifecycle").as_string(), "escalated");
  EXPECT_EQ(o.at("policy_rule").as_string(), "PHL:vulnerable-child");
  EXPECT_EQ(o.at("decision_id").as_string(), "dec-42");
  EXPECT_EQ(o.at("notification").as_int64(), 3);
  EXPECT_EQ(o.at("silenced").as_bool(), true);
  EXPECT_EQ(o.at("silence_id").as_string(), "0123456789abcdef0123456789abcdef");
  const json::object& c = o.at("phase_confirmation").as_object();
  EXPECT_EQ(c.at("phase").as_int64(), 2);
  EXPECT_EQ(c.at("by").as_string(), "tok1");
  EXPECT_EQ(c.at("at").as_string(), "2023-11-14T22:14:20.000Z");
  EXPECT_EQ(c.at("reason").as_string(), "embassy confirms");
  EXPECT_EQ(json::serialize(o.at("sources")), R"(["gdacs","usgs"])");
}

TEST(AlertJsonTest, ByFlagIsSortedAndDeterministic) {
  v1::ConsularAlert a = BaseAlert();
  auto* flags = a.mutable_exposure()->mutable_by_flag();
  (*flags)["older_person"] = 2;
  (*flags)["unaccompanied_child"] = 1;
  (*flags)["child"] = 4;
  const std::string text = AlertToJson(a);
  EXPECT_NE(text.find(R"("by_flag":{"child":4,"older_person":2,"unaccompanied_child":1})"), std::string::npos)
      << text;
  v1::ConsularAlert copy;
  ASSERT_TRUE(copy.ParseFromString(a.SerializeAsString()));
  EXPECT_EQ(AlertToJson(copy), text);
}

TEST(AlertJsonTest, LifecycleNames) {
  EXPECT_EQ(AlertLifecycleName(v1::ALERT_LIFECYCLE_NEW), "new");
  EXPECT_EQ(AlertLifecycleName(v1::ALERT_LIFECYCLE_UPDATED), "updated");
  EXPECT_EQ(AlertLifecycleName(v1::ALERT_LIFECYCLE_DOWNGRADED), "downgraded");
  EXPECT_EQ(AlertLifecycleName(v1::ALERT_LIFECYCLE_CANCELLED), "cancelled");
  EXPECT_EQ(AlertLifecycleName(v1::ALERT_LIFECYCLE_EXPIRED), "expired");
  EXPECT_EQ(AlertLifecycleName(v1::ALERT_LIFECYCLE_CLOSED), "closed");
}

TEST(AlertJsonTest, IsTheSerialisedDomOfItsFieldsWithTheIdsInPlace) {
  // The text is assembled from two halves around the directly written ids:
  // it must be exactly what printing the parsed object gives (valid JSON,
  // every key once, in order).
  v1::ConsularAlert a = BaseAlert();
  a.set_headline("M 6.0 - \"quoted\" \\ line\nbreak");
  a.add_registrant_ids("0123456789abcdef0123456789abcdef");
  a.add_registrant_ids("needs \"escaping\"");
  a.add_sources("usgs");
  const std::string text = AlertToJson(a);
  EXPECT_EQ(text, boost::json::serialize(json::parse(text)));
  json::object o = json::parse(text).as_object();
  ASSERT_EQ(o.at("registrant_ids").as_array().size(), 2u);
  EXPECT_EQ(o.at("registrant_ids").as_array()[1].as_string(), "needs \"escaping\"");
  EXPECT_EQ(o.at("sources").as_array()[0].as_string(), "usgs");
  EXPECT_EQ(o.at("headline").as_string(), "M 6.0 - \"quoted\" \\ line\nbreak");
}

}  // namespace
}  // namespace amparo
