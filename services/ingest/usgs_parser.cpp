#include "services/ingest/usgs_parser.h"

#include <boost/json.hpp>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <system_error>

namespace amparo::ingest {
namespace {

namespace json = boost::json;

// Shortest text that reads back as the same double, with ".0" on integral
// values so an operator sees "123.0" as the number it was in the feed.
std::string FormatNumber(double value) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  std::string out(buf, ec == std::errc() ? end : buf);
  if (std::isfinite(value) && out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}


// Names the JSON kind of `v` for error messages ("got a string").
std::string KindName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "?";
}

std::optional<double> AsNumber(const json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_double()) return v.get_double();
  return std::nullopt;
}

// A JSON integer that fits int64 (USGS times are integers in unix ms; a
// double here means the producer is not what we think it is).
std::optional<int64_t> AsInt64(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.get_uint64());
  }
  return std::nullopt;
}

// The first problem found in one feature.
struct Problem {
  std::string field;
  std::string reason;
};

// Reads one feature, stopping at the first problem (a feature is either an
// event or a rejection; listing every problem of a broken feature adds noise).
class FeatureReader {
 public:
  FeatureReader(std::string prefix, const UsgsParseOptions& options)
      : prefix_(std::move(prefix)), options_(options) {}

  // Fills `event` or returns the problem. `id` receives the feature id as
  // soon as it is known, so rejections can name it.
  std::optional<Problem> Read(const json::value& value, v1::CrisisEvent* event, std::string* id) {
    if (!value.is_object()) return Fail("", "must be an object, got " + KindName(value));
    const json::object& feature = value.get_object();
    const json::value* type = feature.if_contains("type");
    if (!type || !type->is_string() || type->get_string() != "Feature") {
      return Fail("type", "must be \"Feature\"");
    }
    const json::value* id_value = feature.if_contains("id");
    if (!id_value || !id_value->is_string() || id_value->get_string().empty()) {
      return Fail("id", "must be a non-empty string");
    }
    *id = std::string(id_value->get_string());

    const json::value* geometry = feature.if_contains("geometry");
    if (!geometry || !geometry->is_object()) return Fail("geometry", "must be an object");
    const json::value* geo_type = geometry->get_object().if_contains("type");
    if (!geo_type || !geo_type->is_string() || geo_type->get_string() != "Point") {
      std::string got = geo_type && geo_type->is_string() ? Quote(geo_type->get_string()) : "none";
      return Fail("geometry.type", "must be \"Point\", got " + got);
    }
    const json::value* coords_value = geometry->get_object().if_contains("coordinates");
    if (!coords_value || !coords_value->is_array()) {
      return Fail("geometry.coordinates", "must be an array of 2 or 3 numbers");
    }
    const json::array& coords = coords_value->get_array();
    if (coords.size() < 2 || coords.size() > 3) {
      return Fail("geometry.coordinates",
                  "must hold 2 or 3 numbers (lon, lat, depth km), got " + std::to_string(coords.size()));
    }
    double numbers[3] = {0, 0, 0};
    for (size_t i = 0; i < coords.size(); ++i) {
      std::optional<double> n = AsNumber(coords[i]);
      if (!n || !std::isfinite(*n)) {
        return Fail("geometry.coordinates[" + std::to_string(i) + "]",
                    "must be a finite number, got " + (n ? FormatNumber(*n) : KindName(coords[i])));
      }
      numbers[i] = *n;
    }
    const double lon = numbers[0], lat = numbers[1];
    if (lat < -90 || lat > 90) {
      return Fail("geometry.coordinates", "latitude " + FormatNumber(lat) + " out of range -90..90");
    }
    if (lon < -180 || lon > 180) {
      return Fail("geometry.coordinates", "longitude " + FormatNumber(lon) + " out of range -180..180");
    }

    const json::value* props_value = feature.if_contains("properties");
    if (!props_value || !props_value->is_object()) return Fail("properties", "must be an object");
    const json::object& props = props_value->get_object();

    std::optional<int64_t> time, updated;
    if (auto p = RequireInt(props, "time", &time)) return p;
    if (auto p = RequireInt(props, "updated", &updated)) return p;

    std::optional<double> mag, mmi;
    if (auto p = OptionalNumber(props, "mag", &mag)) return p;
    if (auto p = OptionalNumber(props, "mmi", &mmi)) return p;
    // Views into the parsed document, which outlives this reader.
    std::optional<std::string_view> place, title, url, alert, status, type_code, ids;
    for (auto [key, out] : {std::pair{"place", &place},
                            {"title", &title},
                            {"url", &url},
                            {"alert", &alert},
                            {"status", &status},
                            {"type", &type_code},
                            {"ids", &ids}}) {
      if (auto p = OptionalString(props, key, out)) return p;
    }
    if (alert && *alert != "green" && *alert != "yellow" && *alert != "orange" && *alert != "red") {
      return Fail("properties.alert", "must be green, yellow, orange, red or null, got " + Quote(*alert));
    }
    std::optional<int64_t> tsunami;
    if (const json::value* t = props.if_contains("tsunami"); t && !t->is_null()) {
      tsunami = AsInt64(*t);
      if (!tsunami || (*tsunami != 0 && *tsunami != 1))
        return Fail("properties.tsunami", "must be 0, 1 or null");
    }

    event->set_event_id(std::string(kUsgsSource) + ":" + *id);
    event->set_source(std::string(kUsgsSource));
    event->set_source_id(*id);
    if (ids) {
      std::string_view rest = *ids;
      while (!rest.empty()) {
        const size_t comma = rest.find(',');
        const std::string_view alias = rest.substr(0, comma);
        if (!alias.empty() && alias != *id) event->add_id_aliases(std::string(alias));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    }
    event->set_revision(*updated);
    event->set_status(options_.status);
    event->set_msg_type(status && *status == "deleted" ? v1::MESSAGE_TYPE_CANCEL : v1::MESSAGE_TYPE_ALERT);
    // USGS documents "earthquake" as the type of ordinary events; other types
    // (quarry blast, explosion, ice quake...) keep their code for rules to judge.
    const std::string_view code = type_code.value_or("earthquake");
    event->set_hazard(code == "earthquake" ? v1::HAZARD_KIND_EARTHQUAKE : v1::HAZARD_KIND_OTHER);
    event->set_source_hazard_code(std::string(code));
    v1::HazardMetrics* metrics = event->mutable_metrics();
    if (mag) metrics->set_magnitude(*mag);
    if (coords.size() == 3) metrics->set_depth_km(numbers[2]);
    if (alert) metrics->set_pager_alert(std::string(*alert));
    if (mmi) metrics->set_mmi(*mmi);
    if (tsunami) metrics->set_tsunami_flag(*tsunami == 1);
    event->mutable_origin()->set_lat(lat);
    event->mutable_origin()->set_lon(lon);
    if (place) event->set_place(std::string(*place));
    v1::LocalizedText* text = event->add_texts();
    text->set_language("en");
    text->set_headline(std::string(title ? *title : place.value_or("")));
    event->set_onset_ms(*time);
    event->set_sent_ms(*updated);
    if (options_.received_ms != 0) event->set_received_ms(options_.received_ms);
    if (url) event->set_web_url(std::string(*url));
    return std::nullopt;
  }

 private:
  Problem Fail(std::string_view field, std::string reason) const {
    std::string path = prefix_;
    if (!field.empty()) {
      if (!path.empty()) path += ".";
      path += field;
    }
    return {path, std::move(reason)};
  }

  std::optional<Problem> RequireInt(const json::object& props, const char* key, std::optional<int64_t>* out) {
    const json::value* v = props.if_contains(key);
    if (!v || !(*out = AsInt64(*v))) {
      return Fail(std::string("properties.") + key,
                  "must be an integer (unix ms), got " + (v ? KindName(*v) : std::string("nothing")));
    }
    return std::nullopt;
  }

  std::optional<Problem> OptionalNumber(const json::object& props, const char* key,
                                        std::optional<double>* out) {
    const json::value* v = props.if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    *out = AsNumber(*v);
    if (!*out || !std::isfinite(**out)) {
      return Fail(std::string("properties.") + key, "must be a finite number or null, got " + KindName(*v));
    }
    return std::nullopt;
  }

  std::optional<Problem> OptionalString(const json::object& props, const char* key,
                                        std::optional<std::string_view>* out) {
    const json::value* v = props.if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string())
      return Fail(std::string("properties.") + key, "must be a string or null, got " + KindName(*v));
    *out = std::string_view(v->get_string());
    return std::nullopt;
  }

  std::string prefix_;
  const UsgsParseOptions& options_;
};

void ReadFeature(const json::value& value, int index, std::string prefix, const UsgsParseOptions& options,
                 ParsedFeed* feed) {
  FeatureReader reader(std::move(prefix), options);
  v1::CrisisEvent event;
  std::string id;
  if (std::optional<Problem> problem = reader.Read(value, &event, &id)) {
    feed->rejections.push_back({index, id, std::move(problem->field), std::move(problem->reason)});
  } else {
    feed->events.push_back(std::move(event));
  }
}

}  // namespace

Result<ParsedFeed> ParseUsgsGeoJson(std::string_view text, const UsgsParseOptions& options) {
  json::stream_parser parser;
  boost::system::error_code ec;
  size_t consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec && consumed < text.size()) {
    return InvalidArgument("JSON syntax error at " + TextPosition(text, consumed) +
                           ": unexpected data after the document");
  }
  if (ec) return InvalidArgument("JSON syntax error at " + TextPosition(text, consumed) + ": " + ec.message());
  parser.finish(ec);
  if (ec) return InvalidArgument("JSON syntax error at " + TextPosition(text, text.size()) + ": " + ec.message());
  return ParseUsgsGeoJsonValue(parser.release(), options);
}

Result<ParsedFeed> ParseUsgsGeoJsonValue(const json::value& root, const UsgsParseOptions& options) {
  if (!root.is_object()) {
    return InvalidArgument("must be a GeoJSON FeatureCollection or Feature object, got " + KindName(root));
  }
  const json::object& object = root.get_object();
  const json::value* type = object.if_contains("type");
  if (!type || !type->is_string())
    return InvalidArgument("must be \"FeatureCollection\" or \"Feature\"", "type");
  ParsedFeed feed;
  if (type->get_string() == "FeatureCollection") {
    const json::value* features = object.if_contains("features");
    if (!features || !features->is_array()) return InvalidArgument("must be an array", "features");
    feed.kind = ParsedFeed::Kind::kSummary;
    const json::array& list = features->get_array();
    feed.feature_count = static_cast<int>(list.size());
    feed.events.reserve(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      ReadFeature(list[i], static_cast<int>(i), "features[" + std::to_string(i) + "]", options, &feed);
    }
  } else if (type->get_string() == "Feature") {
    feed.kind = ParsedFeed::Kind::kDetail;
    feed.feature_count = 1;
    ReadFeature(root, 0, "", options, &feed);
  } else {
    return InvalidArgument("must be \"FeatureCollection\" or \"Feature\", got " + Quote(type->get_string()),
                           "type");
  }
  return feed;
}

Result<ParsedFeed> ParseUsgsGeoJsonFile(const std::filesystem::path& file, int64_t max_file_bytes,
                                        const UsgsParseOptions& options) {
  auto text = ReadBoundedFile(file, max_file_bytes);
  if (!text.ok()) return text.status();
  return ParseUsgsGeoJson(*text, options);
}

}  // namespace amparo::ingest
