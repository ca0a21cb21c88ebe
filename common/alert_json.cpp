#include "common/alert_json.h"

#include <boost/json.hpp>

#include "common/clock.h"
#include "common/json_text.h"

namespace amparo {

std::string_view AlertLevelName(v1::AlertLevel level) {
  switch (level) {
    case v1::ALERT_LEVEL_INFO: return "info";
    case v1::ALERT_LEVEL_WARNING: return "warning";
    case v1::ALERT_LEVEL_CRITICAL: return "critical";
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
  o["exposure"] = {{"registrants", a.exposure().registrants()},
                   {"household_members", a.exposure().household_members()},
                   {"vulnerable", a.exposure().vulnerable()}};
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
  json::array ids;
  for (const auto& id : a.registrant_ids()) ids.push_back(json::value(id));
  o["registrant_ids"] = std::move(ids);
  return JsonText(o);
}

}  // namespace amparo
