#include "services/cli/demo_data.h"

#include <boost/json.hpp>

#include <cmath>
#include <map>
#include <numbers>
#include <random>

#include "common/geo.h"
#include "common/json_text.h"

namespace amparo::cli {
namespace {

struct City {
  const char* name;
  const char* country;  // ISO3
  double lat, lon;
  double radius_km;     // how far from the centre people are placed
};

// Real places (coordinates of the city centre, rounded). Sources: GeoNames
// (CC-BY 4.0) city records.
const std::map<std::string, City>& Cities() {
  static const std::map<std::string, City> kCities = {
      {"Riyadh", {"Riyadh", "SAU", 24.7136, 46.6753, 20}},
      {"Jeddah", {"Jeddah", "SAU", 21.4858, 39.1925, 15}},
      {"Dubai", {"Dubai", "ARE", 25.2048, 55.2708, 15}},
      {"Doha", {"Doha", "QAT", 25.2854, 51.5310, 10}},
      {"Kuwait City", {"Kuwait City", "KWT", 29.3759, 47.9774, 12}},
      {"Muscat", {"Muscat", "OMN", 23.5880, 58.3829, 12}},
      {"Hong Kong", {"Hong Kong", "HKG", 22.3193, 114.1694, 10}},
      {"Tokyo", {"Tokyo", "JPN", 35.6762, 139.6503, 20}},
      {"Naha", {"Naha", "JPN", 26.2124, 127.6809, 8}},
      {"Singapore", {"Singapore", "SGP", 1.3521, 103.8198, 10}},
      {"Kuala Lumpur", {"Kuala Lumpur", "MYS", 3.1390, 101.6869, 15}},
      {"Taipei", {"Taipei", "TWN", 25.0330, 121.5654, 10}},
      {"Seoul", {"Seoul", "KOR", 37.5665, 126.9780, 15}},
      {"Los Angeles", {"Los Angeles", "USA", 34.0522, -118.2437, 25}},
      {"Washington", {"Washington", "USA", 38.9072, -77.0369, 15}},
      {"Toronto", {"Toronto", "CAN", 43.6532, -79.3832, 15}},
      {"London", {"London", "GBR", 51.5074, -0.1278, 15}},
      {"Beirut", {"Beirut", "LBN", 33.8938, 35.5018, 8}},
      {"Nairobi", {"Nairobi", "KEN", -1.2921, 36.8219, 12}},
      {"Khartoum", {"Khartoum", "SDN", 15.5007, 32.5599, 12}},
      {"Delhi", {"Delhi", "IND", 28.6139, 77.2090, 20}},
      {"Kathmandu", {"Kathmandu", "NPL", 27.7172, 85.3240, 8}},
      {"Lhasa", {"Lhasa", "CHN", 29.6520, 91.1721, 8}},
      {"Shigatse", {"Shigatse", "CHN", 29.2690, 88.8806, 6}},
      {"Lhatse", {"Lhatse", "CHN", 29.0850, 87.6370, 4}},
      {"Tingri", {"Tingri", "CHN", 28.6590, 87.1240, 4}},
  };
  return kCities;
}

struct Diaspora {
  std::vector<std::pair<const char*, double>> cities;  // city, weight
  std::vector<const char*> languages;                   // in order of preference
};

// Rough shares of each state's registered nationals abroad, for a
// plausible demo; not statistics.
const std::map<std::string, Diaspora>& Diasporas() {
  static const std::map<std::string, Diaspora> kDiasporas = {
      {"PHL",
       {{{"Riyadh", 18}, {"Dubai", 16}, {"Hong Kong", 12}, {"Tokyo", 8}, {"Naha", 3}, {"Singapore", 8},
         {"Los Angeles", 12}, {"Doha", 8}, {"Kuwait City", 7}, {"Taipei", 8}},
        {"fil", "en"}}},
      {"IND",
       {{{"Dubai", 20}, {"Riyadh", 14}, {"Doha", 10}, {"Muscat", 10}, {"Kathmandu", 6}, {"London", 12},
         {"Toronto", 10}, {"Singapore", 8}, {"Kuala Lumpur", 8}, {"Lhasa", 2}},
        {"hi", "en"}}},
      {"NPL",
       {{{"Doha", 20}, {"Riyadh", 14}, {"Kuala Lumpur", 16}, {"Dubai", 12}, {"Delhi", 16}, {"Tokyo", 5},
         {"Seoul", 6}, {"Lhasa", 4}, {"Shigatse", 3}, {"Lhatse", 2}, {"Tingri", 2}},
        {"ne", "en"}}},
      {"ETH",
       {{{"Riyadh", 20}, {"Jeddah", 10}, {"Beirut", 14}, {"Dubai", 12}, {"Nairobi", 14}, {"Khartoum", 10},
         {"Washington", 10}, {"Kuwait City", 10}},
        {"am", "om", "en"}}},
  };
  return kDiasporas;
}

// A point uniformly distributed in a disc of `radius_km` around `c`.
geo::LatLon Scatter(const City& c, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double r = c.radius_km * std::sqrt(u(rng));
  double bearing = 2 * std::numbers::pi * u(rng);
  double dlat = r * std::cos(bearing) / 111.2;
  double dlon = r * std::sin(bearing) / (111.2 * std::cos(c.lat * std::numbers::pi / 180));
  return {std::round((c.lat + dlat) * 1e5) / 1e5, std::round((c.lon + dlon) * 1e5) / 1e5};
}

}  // namespace

Result<std::vector<DemoRegistrant>> GenerateDemoPopulation(const DemoOptions& options) {
  if (options.states.empty()) return InvalidArgument("at least one state is needed", "states");
  if (options.registrants < 0) return InvalidArgument("must not be negative", "registrants");
  for (const auto& s : options.states) {
    if (!Diasporas().count(s)) {
      return InvalidArgument("no demo diaspora table for " + s + " (known: ETH, IND, NPL, PHL)", "states");
    }
  }
  std::mt19937_64 rng(options.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  // Household sizes 1..6, mostly small (labour migrants often live alone).
  std::discrete_distribution<int> household({0, 45, 20, 15, 12, 5, 3});
  struct Flag {
    const char* name;
    double p;
  };
  const Flag kFlags[] = {{"older_person", 0.04}, {"child", 0.03},          {"disability", 0.015},
                         {"pregnancy", 0.01},    {"medical_need", 0.02},    {"isolated_domestic_worker", 0.02},
                         {"unaccompanied_child", 0.002}};
  std::vector<DemoRegistrant> out;
  out.reserve(options.registrants);
  for (int i = 0; i < options.registrants; ++i) {
    const std::string& state = options.states[i % options.states.size()];
    const Diaspora& d = Diasporas().at(state);
    std::vector<double> weights;
    for (const auto& [name, w] : d.cities) weights.push_back(w);
    std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
    const City& city = Cities().at(d.cities[pick(rng)].first);
    DemoRegistrant r;
    r.state = state;
    r.external_ref = "DEMO-" + state + "-" + std::to_string(i / options.states.size() + 1);
    r.host_country = city.country;
    r.city = city.name;
    geo::LatLon p = Scatter(city, rng);
    r.lat = p.lat;
    r.lon = p.lon;
    r.household_size = household(rng);
    r.languages.assign(d.languages.begin(), d.languages.end());
    for (const Flag& f : kFlags) {
      if (u(rng) < f.p) r.vulnerabilities.push_back(f.name);
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string RegistrantJson(const DemoRegistrant& r) {
  boost::json::object o;
  o["external_ref"] = r.external_ref;
  o["host_country"] = r.host_country;
  o["lat"] = r.lat;
  o["lon"] = r.lon;
  o["household_size"] = r.household_size;
  boost::json::array langs, vulns;
  for (const auto& l : r.languages) langs.push_back(boost::json::value(l));
  for (const auto& v : r.vulnerabilities) vulns.push_back(boost::json::value(v));
  o["languages"] = std::move(langs);
  o["vulnerabilities"] = std::move(vulns);
  return JsonText(o);
}

}  // namespace amparo::cli
