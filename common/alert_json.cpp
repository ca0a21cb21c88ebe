#include "common/alert_json.h"

#include <boost/json.hpp>

#include <algorithm>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/json_text.h"
#include "common/registrant_id.h"

namespace amparo {

std::string_view AlertLevelName(v1::AlertLevel level) {
  switch (level) {
    case v1::ALERT_LEVEL_INFO: return "info";
    case v1::ALERT_LEVEL_WARNING: return "warning";
    case v1::ALERT_LEVEL_CRITICAL: return "critical";
    default: return "unspecified";
  }
}

std::string_view AlertLifecycleName(v1::AlertLifecycle lifecycle) {
  switch (lifecycle) {
    case v1::ALERT_LIFECYCLE_NEW: return "new";
    case v1::ALERT_LIFECYCLE_UPDATED: return "updated";
    case v1::ALERT_LIFECYCLE_ESCALATED: return "escalated";
    case v1::ALERT_LIFECYCLE_DOWNGRADED: return "downgraded";
    case v1::ALERT_LIFECYCLE_CANCELLED: return "cancelled";
    case v1::ALERT_LIFECYCLE_EXPIRED: return "expired";
    case v1::ALERT_LIFECYCLE_CLOSED: return "closed";
    default: return "unspecified";
  }
}

std::string_view HazardName(v1::HazardKind hazard) {
  switch (hazard) {
    case v1::HAZARD_KIND_EARTHQUAKE: return "earthquake";
    case v1::HAZARD_KIND_TSUNAMI: return "tsunami";
    case v1::HAZARD_KIND_TROPICAL_CYCLONE: return "tropical_cyclone";
    case v1::HAZARD_KIND_FLOOD: return "flood";
    case v1::HAZARD_KIND_VOLCANO: return "volcano";
    case v1::HAZARD_KIND_WILDFIRE: return "wildfire";
    case v1::HAZARD_KIND_DROUGHT: return "drought";
    case v1::HAZARD_KIND_SEVERE_WEATHER: return "severe_weather";
    case v1::HAZARD_KIND_CONFLICT: return "conflict";
    case v1::HAZARD_KIND_CIVIL_UNREST: return "civil_unrest";
    case v1::HAZARD_KIND_OTHER: return "other";
    default: return "unspecified";
  }
}

std::string AlertEventType(const v1::ConsularAlert& alert) {
  if (alert.cancelled()) return "alert.cancelled";
  return alert.revision() <= 1 ? "alert.raised" : "alert.updated";
}

std::string AlertToJson(const v1::ConsularAlert& a) {
  namespace json = boost::json;
  json::object o;
  o["alert_id"] = a.alert_id();
  o["incident_id"] = a.incident_id();
  o["revision"] = a.revision();
  o["state"] = a.state();
  o["host_country"] = a.host_country();
  o["level"] = AlertLevelName(a.level());
  o["exercise"] = a.exercise();
  o["cancelled"] = a.cancelled();
  o["event_status"] = a.event_status();
  o["hazard"] = HazardName(a.hazard());
  o["headline"] = a.headline();
  o["reason"] = a.reason();
  // Protobuf maps iterate in no particular order: sort, so the same alert
  // always has the same bytes (webhook signatures, tests).
  std::vector<std::pair<std::string, uint32_t>> flags(a.exposure().by_flag().begin(),
                                                      a.exposure().by_flag().end());
  std::sort(flags.begin(), flags.end());
  json::object by_flag;
  for (const auto& [flag, count] : flags) by_flag[flag] = count;
  o["exposure"] = {{"registrants", a.exposure().registrants()},
                   {"household_members", a.exposure().household_members()},
                   {"vulnerable", a.exposure().vulnerable()},
                   {"by_flag", std::move(by_flag)}};
  json::object fp;
  fp["description"] = a.footprint().description();
  fp["model"] = a.footprint().footprint_model();
  json::array circles;
  for (const auto& c : a.footprint().circles()) {
    circles.push_back({{"lat", c.center().lat()}, {"lon", c.center().lon()}, {"radius_km", c.radius_km()}});
  }
  fp["circles"] = std::move(circles);
  json::array polygons;
  for (const auto& p : a.footprint().polygons()) {
    json::array ring;
    for (const auto& v : p.vertices()) ring.push_back(json::array{v.lon(), v.lat()});
    polygons.push_back(std::move(ring));
  }
  fp["polygons"] = std::move(polygons);
  o["footprint"] = std::move(fp);
  o["raised_at"] = FormatRfc3339(a.raised_ms());
  o["event_sent_at"] = a.event_sent_ms() ? json::value(FormatRfc3339(a.event_sent_ms())) : json::value(nullptr);
  // The ids (up to max_ids_per_alert) are written straight from their packed
  // bytes between the two halves of the object: a DOM of a thousand strings
  // per webhook body was a fifth of amparo-notify's CPU. Same keys, same
  // order, same bytes as a DOM with the ids in place.
  std::string out = JsonText(o);
  out.pop_back();  // '}'
  out += ",\"registrant_ids\":";
  AppendAlertRegistrantIdsJson(a, &out);
  o.clear();
  o["phase"] = static_cast<int>(a.phase());
  o["proposed_phase"] = static_cast<int>(a.proposed_phase());
  o["lifecycle"] = AlertLifecycleName(a.lifecycle());
  o["policy_rule"] = a.policy_rule();
  o["decision_id"] = a.decision_id();
  o["notification"] = a.notification();
  o["silenced"] = a.silenced();
  o["silence_id"] = a.silence_id();
  if (a.has_phase_confirmation()) {
    const v1::PhaseConfirmation& c = a.phase_confirmation();
    o["phase_confirmation"] = {
        {"phase", static_cast<int>(c.phase())},
        {"by", c.by()},
        {"at", c.at_ms() ? json::value(FormatRfc3339(c.at_ms())) : json::value(nullptr)},
        {"reason", c.reason()}};
  } else {
    o["phase_confirmation"] = nullptr;
  }
  json::array sources;
  for (const auto& s : a.sources()) sources.push_back(json::value(s));
  o["sources"] = std::move(sources);
  const std::string rest = JsonText(o);
  out += ',';
  out.append(rest, 1);  // without its '{'
  return out;
}

}  // namespace amparo
