// The JSON form of a ConsularAlert, shared by the webhook body (`data`), the
// gateway API and the console, so every channel says the same thing.
#pragma once

#include <string>

#include "amparo/v1/alert.pb.h"

namespace amparo {

// {"alert_id","incident_id","revision","state","host_country","level",
//  "exercise","cancelled","event_status","hazard","headline","reason",
//  "exposure":{"registrants","household_members","vulnerable"},
//  "footprint":{"description","model","circles":[{"lat","lon","radius_km"}],
//               "polygons":[[[lon,lat],...]]},
//  "raised_at","event_sent_at","registrant_ids":[...]}
// Times are RFC 3339 UTC. `level` is "info" | "warning" | "critical".
std::string AlertToJson(const v1::ConsularAlert& alert);

// "alert.raised" (revision 1), "alert.updated", or "alert.cancelled".
std::string AlertEventType(const v1::ConsularAlert& alert);
std::string_view AlertLevelName(v1::AlertLevel level);
std::string_view HazardName(v1::HazardKind hazard);

}  // namespace amparo
