#include "common/gazetteer.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <unordered_map>

#ifndef AMPARO_SOURCE_DIR
#error "AMPARO_SOURCE_DIR must be defined by the build (common/CMakeLists.txt)"
#endif

namespace amparo {

namespace {

constexpr int kColumns = 7;  // name, alt_names, country_iso3, admin1, lat, lon, population

// ASCII case folding only: non-ASCII bytes compare as they are, which is why
// the data file carries a diacritic-free alternate for every such name.
void AppendLower(std::string& out, std::string_view s) {
  for (char c : s) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string IndexKey(std::string_view country, std::string_view name) {
  std::string key;
  key.reserve(country.size() + 1 + name.size());
  key.append(country);
  key += '\t';
  AppendLower(key, name);
  return key;
}

bool ParseDouble(std::string_view s, double& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool ParseInt(std::string_view s, int64_t& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

struct Gazetteer::Impl {
  std::vector<Place> places;  // by country, then population descending
  // "<ISO3>\t<lower-case name>" -> index of the most populous place so named.
  std::unordered_map<std::string, uint32_t> by_name;
  // ISO3 -> [begin, end) in `places`.
  std::map<std::string, std::pair<uint32_t, uint32_t>, std::less<>> by_country;
};

Gazetteer::Gazetteer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Gazetteer::~Gazetteer() = default;

std::filesystem::path Gazetteer::DefaultPath() {
  return std::filesystem::path(AMPARO_SOURCE_DIR) / "data" / "gazetteer" / "cities.tsv";
}

Result<std::shared_ptr<const Gazetteer>> Gazetteer::Load(const std::filesystem::path& file) {
  // One read of the whole file (about 6 MB) and in-place splitting is several
  // times faster than getline + stringstream.
  std::string text;
  {
    std::FILE* f = std::fopen(file.c_str(), "rb");
    if (!f) return NotFound("gazetteer file " + file.string() + " cannot be opened");
    char buffer[1 << 16];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) text.append(buffer, n);
    bool failed = std::ferror(f);
    std::fclose(f);
    if (failed) return Unavailable("gazetteer file " + file.string() + " could not be read");
  }
  auto impl = std::make_unique<Impl>();
  std::vector<std::pair<uint32_t, std::string_view>> alts;  // (place index, alternate name)
  alts.reserve(text.size() / 40);
  impl->places.reserve(text.size() / 45);
  auto bad_line = [&file](size_t line, const std::string& why) {
    return InvalidArgument("gazetteer " + file.string() + ":" + std::to_string(line) + ": " + why);
  };
  std::string_view rest(text);
  size_t line_number = 0;
  while (!rest.empty()) {
    ++line_number;
    size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    std::string_view cols[kColumns];
    int count = 0;
    for (size_t start = 0;;) {
      size_t tab = line.find('\t', start);
      if (count < kColumns)
        cols[count] = line.substr(start, tab == std::string_view::npos ? tab : tab - start);
      ++count;
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    if (count != kColumns) {
      return bad_line(line_number, "expected " + std::to_string(kColumns) + " tab-separated columns, found " +
                                       std::to_string(count));
    }
    Place p;
    if (cols[0].empty()) return bad_line(line_number, "empty name");
    if (cols[2].size() != 3)
      return bad_line(line_number, "country must be an ISO3 code, got \"" + std::string(cols[2]) + "\"");
    if (!ParseDouble(cols[4], p.lat) || p.lat < -90 || p.lat > 90) {
      return bad_line(line_number, "lat \"" + std::string(cols[4]) + "\" is not a latitude");
    }
    if (!ParseDouble(cols[5], p.lon) || p.lon < -180 || p.lon > 180) {
      return bad_line(line_number, "lon \"" + std::string(cols[5]) + "\" is not a longitude");
    }
    if (!ParseInt(cols[6], p.population) || p.population < 0) {
      return bad_line(line_number, "population \"" + std::string(cols[6]) + "\" is not a whole number");
    }
    p.name.assign(cols[0]);
    p.country.assign(cols[2]);
    p.admin1.assign(cols[3]);
    auto index = static_cast<uint32_t>(impl->places.size());
    for (std::string_view a = cols[1]; !a.empty();) {
      size_t bar = a.find('|');
      std::string_view one = a.substr(0, bar);
      if (!one.empty()) alts.emplace_back(index, one);
      a = bar == std::string_view::npos ? std::string_view() : a.substr(bar + 1);
    }
    impl->places.push_back(std::move(p));
  }
  auto& places = impl->places;
  auto order = [](const Place& a, const Place& b) {
    if (a.country != b.country) return a.country < b.country;
    return a.population > b.population;
  };
  // The bundled file is already in this order; another file may not be. The
  // alternate names point at positions, so sorting goes through a permutation.
  if (!std::is_sorted(places.begin(), places.end(), order)) {
    std::vector<uint32_t> perm(places.size());
    for (uint32_t i = 0; i < perm.size(); ++i) perm[i] = i;
    std::stable_sort(perm.begin(), perm.end(),
                     [&](uint32_t a, uint32_t b) { return order(places[a], places[b]); });
    std::vector<uint32_t> new_position(places.size());
    std::vector<Place> sorted;
    sorted.reserve(places.size());
    for (uint32_t i = 0; i < perm.size(); ++i) {
      new_position[perm[i]] = i;
      sorted.push_back(std::move(places[perm[i]]));
    }
    places = std::move(sorted);
    for (auto& [index, name] : alts) index = new_position[index];
  }
  impl->by_name.reserve(places.size() + alts.size());
  // Keep the most populous place per key: on equal population, the earlier
  // (file order) wins, which keeps the choice deterministic.
  auto index_name = [&](std::string_view name, uint32_t index) {
    auto [it, inserted] = impl->by_name.try_emplace(IndexKey(places[index].country, name), index);
    if (!inserted && places[index].population > places[it->second].population) it->second = index;
  };
  for (uint32_t i = 0; i < places.size(); ++i) {
    index_name(places[i].name, i);
    auto& range = impl->by_country[places[i].country];
    if (range.second == 0) range.first = i;
    range.second = i + 1;
  }
  for (const auto& [index, name] : alts) index_name(name, index);
  return std::shared_ptr<const Gazetteer>(std::make_shared<Gazetteer>(std::move(impl)));
}

Result<Place> Gazetteer::Resolve(std::string_view name, std::string_view country_iso3) const {
  auto it = impl_->by_name.find(IndexKey(country_iso3, name));
  if (it == impl_->by_name.end()) {
    return NotFound("no place named \"" + std::string(name) + "\" in " + std::string(country_iso3) +
                    " in the gazetteer");
  }
  return impl_->places[it->second];
}

std::vector<Place> Gazetteer::InCountry(std::string_view country_iso3) const {
  auto it = impl_->by_country.find(country_iso3);
  if (it == impl_->by_country.end()) return {};
  return {impl_->places.begin() + it->second.first, impl_->places.begin() + it->second.second};
}

size_t Gazetteer::size() const { return impl_->places.size(); }

}  // namespace amparo
