// `amparo demo-data`: a synthetic, deterministic population of registered
// nationals in real cities, loaded through the gateway's registration API
// (the same path a state's registry uses).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace amparo::cli {

struct DemoRegistrant {
  std::string state;         // ISO3 of the registering state
  std::string external_ref;  // "DEMO-<state>-<n>"
  std::string host_country;  // ISO3
  std::string city;          // the real city it was placed in
  double lat = 0, lon = 0;
  int household_size = 1;
  std::vector<std::string> languages;
  std::vector<std::string> vulnerabilities;
};

struct DemoOptions {
  int registrants = 2000;                                  // spread evenly over the states
  std::vector<std::string> states = {"PHL", "IND", "NPL", "ETH"};
  uint64_t seed = 1;
};

// Deterministic for a seed. Fails on a state it has no diaspora table for.
Result<std::vector<DemoRegistrant>> GenerateDemoPopulation(const DemoOptions& options);
// The JSON body for POST /api/v1/registrants.
std::string RegistrantJson(const DemoRegistrant& r);

}  // namespace amparo::cli
