// The JSON form of a ConsularAlert, shared by the webhook body (`data`), the
// gateway API and the console, so every channel says the same thing.
#pragma once

#include <string>

#include "amparo/v1/alert.pb.h"

namespace amparo {

// {"alert_id","incident_id","revision","state","host_country","level",
//  "exercise","cancelled","event_status","hazard","headline","reason",
//  "exposure":{"registrants","household_members","vulnerable","by_flag":{"<flag>":n,...}},
//  "footprint":{"description","model","circles":[{"lat","lon","radius_km"}],
//               "polygons":[[[lon,lat],...]]},
//  "raised_at","event_sent_at","registrant_ids":[...],
//  "phase","proposed_phase","lifecycle","policy_rule","decision_id","notification",
//  "silenced","silence_id","phase_confirmation":{"phase","by","at","reason"}|null,
//  "sources":[...]}
// Times are RFC 3339 UTC. `level` is "info" | "warning" | "critical".
// `phase` and `proposed_phase` are the crisis phase numbers 0..4 (0: none);
// `lifecycle` is AlertLifecycleName(). `by_flag` keys are sorted; flags with
// nobody exposed are absent. `notification` is 0 for the first notification
// of a revision and 1, 2, ... for repeats.
std::string AlertToJson(const v1::ConsularAlert& alert);

// "alert.raised" (revision 1), "alert.updated", or "alert.cancelled".
std::string AlertEventType(const v1::ConsularAlert& alert);
std::string_view AlertLevelName(v1::AlertLevel level);
// "new" | "updated" | "escalated" | "downgraded" | "cancelled" | "expired" |
// "closed" | "unspecified".
std::string_view AlertLifecycleName(v1::AlertLifecycle lifecycle);
std::string_view HazardName(v1::HazardKind hazard);

}  // namespace amparo
