// `amparo check FILE...`: vet feed files by hand, exactly as ingest would
// read them (ParseFeedFile: same format detection, limits and validation).
//
// For each file, in order:
//   accepted -> one JSON line per event on `out`:
//     {"file","format","source","event_id","source_id","aliases","revision",
//      "status","msgType","references","hazard","source_hazard","severity",
//      "urgency","certainty","gdacs_alert","pager_alert","magnitude","scope",
//      "origin":{"lat","lon"},"areas":[{"description","polygons","circles",
//      "geocodes"}],"onset","expires","sent" (RFC 3339),"languages","headline"}
//     (a file with no entries prints {"file","format","events":0});
//   rejected -> {"file","rejected":true,"reason":"<field>: <why>"} on `out`.
// On `err`: each accepted deviation ("<file>: warning polygon-after-geocode: ...")
// and each entry rejected inside an accepted file ("<file>: entry rejected: ...").
// Files named "*.exercise.<ext>" are read as exercises, as in the spool.
// Returns 0 when every file was accepted, 1 when any was rejected.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace amparo::ingest {

int RunCheck(const std::vector<std::string>& files, bool lenient, std::ostream& out, std::ostream& err);

}  // namespace amparo::ingest
