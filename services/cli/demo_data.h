// `amparo demo-data`: a synthetic, deterministic population of registered
// nationals in real cities, loaded through the gateway's registration API
// (the same path a state's registry uses).
//
// Where people are placed: each state has a diaspora table of host countries
// with weights (plausible, not statistics); inside a host country a city is
// drawn from the bundled gazetteer weighted by population (a few named towns
// are featured explicitly, e.g. Nepalese nationals in the Tingri/Lhatse/
// Shigatse area of Tibet for the quick start's earthquake demo), and the
// point is scattered in a disc whose radius grows with the city's size.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace amparo {
class Gazetteer;
}

namespace amparo::cli {

// An accompanying household member, in the gateway's vocabulary
// (services/gateway/gateway_store.h HouseholdMember).
struct DemoMember {
  std::string age_band;     // "0-4" | "5-17" | "18-59" | "60+"
  std::string nationality;  // ISO3; the host country's for some mixed families
};

struct DemoRegistrant {
  std::string state;                         // ISO3 of the registering state
  std::string external_ref;                  // "DEMO-<state>-<n>"
  std::string host_country;                  // ISO3, never `state`
  std::string city;                          // the gazetteer place it was placed near
  double lat = 0, lon = 0;                   // 5 decimals
  int household_size = 1;                    // 1..7, the registrant included
  std::vector<std::string> languages;        // BCP-47, by preference
  std::vector<std::string> vulnerabilities;  // gateway kVulnerabilityNames
  std::vector<DemoMember> members;           // household_size - 1 entries
};

struct DemoOptions {
  int registrants = 2000;  // spread round-robin over the states
  // States with a diaspora table: BGD, ETH, IDN, IND, MEX, NPL, PHL, SYR.
  std::vector<std::string> states = {"PHL", "IND", "NPL", "ETH"};
  uint64_t seed = 1;
  // The gazetteer to draw cities from; null loads Gazetteer::DefaultPath().
  std::shared_ptr<const Gazetteer> gazetteer;
};

// Deterministic for a seed (and a gazetteer file). InvalidArgument (field
// "states" or "registrants") for an unknown state or a negative count;
// the gazetteer's error when it cannot be loaded; FailedPrecondition when
// it lacks a host country or a featured town of a diaspora table.
Result<std::vector<DemoRegistrant>> GenerateDemoPopulation(const DemoOptions& options);
// The JSON body for POST /api/v1/registrants: external_ref, host_country,
// lat, lon, household_size, languages, vulnerabilities.
std::string RegistrantJson(const DemoRegistrant& r);

}  // namespace amparo::cli
