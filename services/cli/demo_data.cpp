#include "services/cli/demo_data.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <random>
#include <set>
#include <string_view>

#include "common/gazetteer.h"
#include "common/geo.h"
#include "common/json_text.h"

namespace amparo::cli {
namespace {

// ---------------------------------------------------------------- tables
// Everything below is plausible, not statistics: rough shapes of each
// state's registered nationals abroad, good enough for a demo to look real
// (Gulf labour migration, settlement countries, neighbours) and to exercise
// the pipeline. Do not quote these numbers.

struct Weighted {
  const char* value;
  double weight;
};

struct Host {
  const char* country;  // ISO3
  double weight;
  // When non-empty, people are placed only in these towns (resolved through
  // the gazetteer) instead of across the country by population.
  std::vector<Weighted> featured_towns = {};
};

struct Optional {
  const char* language;
  double probability;
};

struct StateProfile {
  std::vector<Host> hosts;
  std::vector<Weighted> first_languages;  // mother tongue, weighted
  const char* national_language;          // appended when not first ("" = none)
  std::vector<Optional> other_languages;  // each appended with its probability
  double single_share;                    // households of one (labour migrants)
  bool large_families;                    // refugee families: sizes skew larger
};

// Dense tables read better than clang-format's one entry per line.
// clang-format off
const std::map<std::string, StateProfile, std::less<>>& Profiles() {
  static const auto* kProfiles = new std::map<std::string, StateProfile, std::less<>>{
      {"PHL",
       {{{"SAU", 20}, {"ARE", 16}, {"USA", 14}, {"HKG", 7}, {"JPN", 7}, {"KWT", 6}, {"QAT", 6}, {"SGP", 5},
         {"TWN", 5}, {"CAN", 5}, {"KOR", 3}, {"MYS", 3}, {"ITA", 3}},
        {{"fil", 75}, {"ceb", 20}, {"ilo", 5}},
        "fil",
        {{"en", 0.85}},
        0.55,
        false}},
      {"IND",
       {{{"ARE", 22}, {"SAU", 14}, {"USA", 12}, {"GBR", 8}, {"CAN", 8}, {"KWT", 6}, {"OMN", 6}, {"QAT", 6},
         {"AUS", 5}, {"MYS", 4}, {"NPL", 3}, {"SGP", 3}},
        {{"hi", 40}, {"ml", 15}, {"ta", 10}, {"te", 10}, {"pa", 8}, {"gu", 7}, {"bn", 5}, {"mr", 5}},
        "",
        {{"en", 0.7}, {"hi", 0.4}},
        0.5,
        false}},
      {"NPL",
       // CHN: Nepalese traders and workers in the Tingri/Lhatse/Shigatse area
       // (the quick start replays the 2025 Tibet earthquake, epicentre near
       // 28.64N 87.36E). The gazetteer names Tingri "Xêgar", Lhatse "Quxar",
       // Shigatse "Rikaze"; the English names resolve through its alternates.
       {{{"QAT", 18}, {"MYS", 16}, {"SAU", 14}, {"IND", 14}, {"ARE", 12}, {"KOR", 6}, {"JPN", 5}, {"KWT", 5},
         {"CHN", 6,
          {{"Tingri", 4}, {"Lhatse", 3}, {"Shigatse", 3}, {"Sakya", 2}, {"Dinggye", 2}, {"Lhasa", 2}}},
         {"USA", 2}, {"AUS", 2}},
        {{"ne", 80}, {"mai", 10}, {"new", 5}, {"bho", 5}},
        "ne",
        {{"en", 0.5}, {"hi", 0.3}},
        0.7,
        false}},
      {"ETH",
       {{{"SAU", 28}, {"KEN", 10}, {"LBN", 10}, {"USA", 10}, {"ARE", 8}, {"KWT", 8}, {"SDN", 8}, {"ZAF", 6},
         {"ISR", 4}, {"DJI", 4}},
        {{"am", 55}, {"om", 30}, {"ti", 15}},
        "am",
        {{"en", 0.4}},
        0.6,
        false}},
      {"MEX",
       {{{"USA", 90}, {"CAN", 5}, {"ESP", 3}, {"GTM", 2}},
        {{"es", 95}, {"nah", 3}, {"yua", 2}},
        "es",
        {{"en", 0.4}},
        0.3,
        false}},
      {"SYR",
       {{{"TUR", 45}, {"DEU", 15}, {"LBN", 15}, {"JOR", 10}, {"IRQ", 5}, {"EGY", 4}, {"SWE", 3}},
        {{"ar", 88}, {"ku", 10}, {"hy", 2}},
        "ar",
        {{"en", 0.2}},
        0.15,
        true}},
      {"BGD",
       {{{"SAU", 25}, {"ARE", 14}, {"MYS", 12}, {"IND", 10}, {"OMN", 8}, {"GBR", 8}, {"QAT", 6}, {"KWT", 5},
         {"USA", 5}, {"SGP", 4}, {"ITA", 3}},
        {{"bn", 100}},
        "",
        {{"en", 0.4}},
        0.7,
        false}},
      {"IDN",
       {{{"MYS", 35}, {"SAU", 20}, {"HKG", 10}, {"TWN", 10}, {"SGP", 8}, {"ARE", 5}, {"JPN", 5}, {"KOR", 4},
         {"QAT", 3}},
        {{"id", 70}, {"jv", 20}, {"su", 10}},
        "id",
        {{"en", 0.3}},
        0.65,
        false}},
  };
  return *kProfiles;
}

// The host's main language, sometimes learnt by long-term residents.
const std::map<std::string, const char*, std::less<>>& HostLanguages() {
  static const auto* kLanguages = new std::map<std::string, const char*, std::less<>>{
      {"ARE", "ar"}, {"AUS", "en"}, {"CAN", "en"}, {"CHN", "zh"},    {"DEU", "de"}, {"DJI", "fr"},
      {"EGY", "ar"}, {"ESP", "es"}, {"GBR", "en"}, {"GTM", "es"},    {"HKG", "yue"}, {"IND", "hi"},
      {"IRQ", "ar"}, {"ISR", "he"}, {"ITA", "it"}, {"JOR", "ar"},    {"JPN", "ja"}, {"KEN", "sw"},
      {"KOR", "ko"}, {"KWT", "ar"}, {"LBN", "ar"}, {"MYS", "ms"},    {"NPL", "ne"}, {"OMN", "ar"},
      {"QAT", "ar"}, {"SAU", "ar"}, {"SDN", "ar"}, {"SGP", "en"},    {"SWE", "sv"}, {"TUR", "tr"},
      {"TWN", "zh"}, {"USA", "en"}, {"ZAF", "en"},
  };
  return *kLanguages;
}
// clang-format on

// Where families settle and mixed-nationality households are common.
bool IsSettlementCountry(std::string_view host) {
  static const std::set<std::string_view> kSettlement = {"AUS", "CAN", "DEU", "ESP", "GBR", "IND", "ITA",
                                                         "JPN", "KOR", "SWE", "TUR", "TWN", "USA"};
  return kSettlement.count(host) > 0;
}

// Where live-in domestic work in isolated households is common.
bool IsDomesticWorkHost(std::string_view host) {
  static const std::set<std::string_view> kHosts = {"ARE", "HKG", "JOR", "KWT", "LBN", "MYS",
                                                    "OMN", "QAT", "SAU", "SGP", "TWN"};
  return kHosts.count(host) > 0;
}

// How many of a country's most populous places people are spread over: the
// long tail of villages adds nothing to a demo.
constexpr size_t kPlacesPerCountry = 400;

// ---------------------------------------------------------------- drawing

struct PlacePicker {
  std::vector<Place> places;
  std::discrete_distribution<size_t> pick;
};

class Generator {
 public:
  Generator(const Gazetteer& gazetteer, uint64_t seed) : gazetteer_(gazetteer), rng_(seed) {}

  // Resolves every host country and featured town up front, so a gazetteer
  // that lacks one fails before anything is generated.
  Status Prepare(const std::vector<std::string>& states) {
    for (const auto& state : states) {
      for (const Host& host : Profiles().find(state)->second.hosts) {
        auto st = host.featured_towns.empty() ? PrepareCountry(host.country) : PrepareFeatured(state, host);
        AMPARO_RETURN_IF_ERROR(st);
      }
    }
    return Status::Ok();
  }

  DemoRegistrant Make(const std::string& state, int number) {
    const StateProfile& profile = Profiles().find(state)->second;
    DemoRegistrant r;
    r.state = state;
    r.external_ref = "DEMO-" + state + "-" + std::to_string(number);
    const Host& host = profile.hosts[Pick(profile.hosts)];
    r.host_country = host.country;
    PlacePicker& picker =
        host.featured_towns.empty() ? by_country_.at(host.country) : featured_.at(state + "/" + host.country);
    const Place& place = picker.places[picker.pick(rng_)];
    r.city = place.name;
    Scatter(place, r);
    MakeHousehold(profile, r);
    MakeLanguages(profile, r);
    return r;
  }

 private:
  Status PrepareCountry(const std::string& country) {
    if (by_country_.count(country)) return Status::Ok();
    std::vector<Place> places = gazetteer_.InCountry(country);
    if (places.empty()) return {StatusCode::kFailedPrecondition, "the gazetteer has no places in " + country};
    if (places.size() > kPlacesPerCountry) places.resize(kPlacesPerCountry);
    std::vector<double> weights;
    // A floor of 1,000 (the gazetteer's own threshold) for places GeoNames
    // gives no population, so they are rare but possible.
    for (const Place& p : places) {
      weights.push_back(std::max<double>(static_cast<double>(p.population), 1000));
    }
    by_country_.emplace(country, PlacePicker{std::move(places), {weights.begin(), weights.end()}});
    return Status::Ok();
  }

  Status PrepareFeatured(const std::string& state, const Host& host) {
    PlacePicker picker;
    std::vector<double> weights;
    for (const Weighted& town : host.featured_towns) {
      auto place = gazetteer_.Resolve(town.value, host.country);
      if (!place.ok()) {
        return {
            StatusCode::kFailedPrecondition,
            "demo table for " + state + " features a town the gazetteer lacks: " + place.status().message()};
      }
      picker.places.push_back(*place);
      weights.push_back(town.weight);
    }
    picker.pick = std::discrete_distribution<size_t>(weights.begin(), weights.end());
    featured_.emplace(state + "/" + host.country, std::move(picker));
    return Status::Ok();
  }

  template <typename T>
  size_t Pick(const std::vector<T>& items) {
    std::vector<double> weights;
    for (const T& item : items) weights.push_back(item.weight);
    return std::discrete_distribution<size_t>(weights.begin(), weights.end())(rng_);
  }

  bool Chance(double p) { return uniform_(rng_) < p; }

  // Uniform in a disc whose radius grows with the place: about 2 km around a
  // town, 10 km around a city of a million, 30 km at most for a megacity.
  void Scatter(const Place& place, DemoRegistrant& r) {
    double radius_km = std::min(30.0, 2 + 8 * std::sqrt(static_cast<double>(place.population) / 1e6));
    double distance = radius_km * std::sqrt(uniform_(rng_));
    double bearing = 2 * std::numbers::pi * uniform_(rng_);
    double dlat = distance * std::cos(bearing) / 111.2;
    double dlon = distance * std::sin(bearing) / (111.2 * std::cos(place.lat * std::numbers::pi / 180));
    r.lat = std::round(std::clamp(place.lat + dlat, -90.0, 90.0) * 1e5) / 1e5;
    r.lon = std::round(std::clamp(place.lon + dlon, -180.0, 180.0) * 1e5) / 1e5;
  }

  void MakeHousehold(const StateProfile& profile, DemoRegistrant& r) {
    std::string own_band = "18-59";
    double band = uniform_(rng_);
    if (band < 0.05) own_band = "60+";
    int size = 1;
    if (!Chance(profile.single_share)) {
      // Sizes 2..7.
      std::discrete_distribution<int> family = profile.large_families
                                                   ? std::discrete_distribution<int>({12, 18, 24, 22, 15, 9})
                                                   : std::discrete_distribution<int>({30, 25, 22, 13, 7, 3});
      size = 2 + family(rng_);
    } else if (band > 0.985) {
      own_band = "5-17";  // a minor registered alone: unaccompanied
    }
    r.household_size = size;
    bool mixed = Chance(IsSettlementCountry(r.host_country) ? 0.2 : 0.03);
    for (int i = 1; i < size; ++i) {
      DemoMember m;
      if (i == 1 && Chance(0.8)) {  // a partner
        m.age_band = own_band == "60+" ? "60+" : "18-59";
        m.nationality = mixed ? r.host_country : r.state;
      } else if (Chance(0.85)) {  // a child
        m.age_band = Chance(0.35) ? "0-4" : "5-17";
        m.nationality = mixed && Chance(0.5) ? r.host_country : r.state;
      } else {  // an older parent or another adult relative
        m.age_band = Chance(0.6) ? "60+" : "18-59";
        m.nationality = r.state;
      }
      r.members.push_back(std::move(m));
    }
    auto has_band = [&r](std::string_view b) {
      return std::any_of(r.members.begin(), r.members.end(),
                         [b](const DemoMember& m) { return m.age_band == b; });
    };
    bool has_child = has_band("0-4") || has_band("5-17");
    // In the gateway's kVulnerabilityNames order.
    if (own_band == "5-17") r.vulnerabilities.push_back("unaccompanied_child");
    if (has_child) r.vulnerabilities.push_back("child");
    if (own_band == "60+" || has_band("60+")) r.vulnerabilities.push_back("older_person");
    if (Chance(0.02)) r.vulnerabilities.push_back("disability");
    if (own_band == "18-59" && Chance(0.015)) r.vulnerabilities.push_back("pregnancy");
    if (Chance(0.025)) r.vulnerabilities.push_back("medical_need");
    if (own_band != "5-17" && Chance(0.003)) r.vulnerabilities.push_back("in_detention");
    if (size == 1 && own_band == "18-59" && IsDomesticWorkHost(r.host_country) && Chance(0.25)) {
      r.vulnerabilities.push_back("isolated_domestic_worker");
    }
    if (Chance(0.002)) r.vulnerabilities.push_back("trafficking_victim");
  }

  void MakeLanguages(const StateProfile& profile, DemoRegistrant& r) {
    auto add = [&r](std::string_view tag) {
      if (!tag.empty() && std::find(r.languages.begin(), r.languages.end(), tag) == r.languages.end()) {
        r.languages.emplace_back(tag);
      }
    };
    add(profile.first_languages[Pick(profile.first_languages)].value);
    add(profile.national_language);
    for (const Optional& o : profile.other_languages) {
      if (Chance(o.probability)) add(o.language);
    }
    if (auto it = HostLanguages().find(r.host_country); it != HostLanguages().end() && Chance(0.2)) {
      add(it->second);
    }
  }

  const Gazetteer& gazetteer_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  std::map<std::string, PlacePicker> by_country_;  // host ISO3 -> places by population
  std::map<std::string, PlacePicker> featured_;    // "<state>/<host>" -> featured towns
};

}  // namespace

Result<std::vector<DemoRegistrant>> GenerateDemoPopulation(const DemoOptions& options) {
  if (options.states.empty()) return InvalidArgument("at least one state is needed", "states");
  if (options.registrants < 0) return InvalidArgument("must not be negative", "registrants");
  for (const auto& s : options.states) {
    if (!Profiles().count(s)) {
      std::string known;
      for (const auto& [code, profile] : Profiles()) known += (known.empty() ? "" : ", ") + code;
      return InvalidArgument("no demo diaspora table for " + s + " (known: " + known + ")", "states");
    }
  }
  std::shared_ptr<const Gazetteer> gazetteer = options.gazetteer;
  if (!gazetteer) {
    auto loaded = Gazetteer::Load(Gazetteer::DefaultPath());
    if (!loaded.ok()) return loaded.status();
    gazetteer = *loaded;
  }
  Generator generator(*gazetteer, options.seed);
  AMPARO_RETURN_IF_ERROR(generator.Prepare(options.states));
  std::vector<DemoRegistrant> out;
  out.reserve(options.registrants);
  for (int i = 0; i < options.registrants; ++i) {
    const std::string& state = options.states[i % options.states.size()];
    out.push_back(generator.Make(state, static_cast<int>(i / options.states.size()) + 1));
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
