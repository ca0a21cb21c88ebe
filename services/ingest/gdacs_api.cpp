#include "services/ingest/gdacs_api.h"

#include <boost/json.hpp>

#include <cmath>

namespace amparo::ingest {
namespace {

namespace json = boost::json;

const json::object* Properties(const json::value& feature) {
  const json::object* object = feature.if_object();
  if (object == nullptr) return nullptr;
  const json::value* props = object->if_contains("properties");
  return props ? props->if_object() : nullptr;
}

std::optional<double> Number(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  if (v->is_double() && std::isfinite(v->get_double())) return v->get_double();
  return std::nullopt;
}

std::string String(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return {};
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_int64()) return std::to_string(v->get_int64());
  if (v->is_uint64()) return std::to_string(v->get_uint64());
  return {};
}

// An identifying field that must be a non-empty string or an integer.
Status RequireId(const json::object& props, std::string_view key, std::string* out) {
  *out = String(props, key);
  if (out->empty()) return InvalidArgument("must be an integer or non-empty string", "properties." + std::string(key));
  return Status::Ok();
}

// GeoJSON [lon, lat] -> LatLon; false when malformed or out of range.
bool ReadPosition(const json::value& position, v1::LatLon* out) {
  const json::array* a = position.if_array();
  if (a == nullptr || a->size() < 2) return false;
  auto lon = Number(&(*a)[0]);
  auto lat = Number(&(*a)[1]);
  if (!lat || !lon || std::abs(*lat) > 90 || std::abs(*lon) > 180) return false;
  out->set_lat(*lat);
  out->set_lon(*lon);
  return true;
}

// A GeoJSON polygon: the outer ring, then its interior rings as holes (RFC
// 7946 3.1.6). Every ring needs >= 4 positions in range.
bool ReadRing(const json::value& rings, v1::Polygon* out) {
  const json::array* a = rings.if_array();
  if (a == nullptr || a->empty() || !(*a)[0].is_array()) return false;
  for (const json::value& position : (*a)[0].get_array())
    if (!ReadPosition(position, out->add_vertices())) return false;
  if (out->vertices_size() < 4) return false;
  for (size_t i = 1; i < a->size(); ++i) {
    const json::array* ring = (*a)[i].if_array();
    if (ring == nullptr || ring->size() < 4) return false;
    v1::Ring* hole = out->add_holes();
    for (const json::value& position : *ring)
      if (!ReadPosition(position, hole->add_vertices())) return false;
  }
  return true;
}

// Fills the fields every GDACS API document shares from one properties object.
Status FillCommon(const json::object& props, const FeedContext& context, v1::CrisisEvent* event) {
  std::string type, id;
  AMPARO_RETURN_IF_ERROR(RequireId(props, "eventtype", &type));
  AMPARO_RETURN_IF_ERROR(RequireId(props, "eventid", &id));
  for (char& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string source_id = type + id;
  event->set_source("gdacs");
  event->set_source_id(source_id);
  event->set_event_id("gdacs:" + source_id);
  if (std::string episode = String(props, "episodeid"); !episode.empty())
    event->add_id_aliases(source_id + "-" + episode);
  // GLIDE numbers are global ids: ReliefWeb and others join the incident by them.
  if (std::string glide = String(props, "glide"); !glide.empty()) event->add_id_aliases("glide:" + glide);
  event->set_status(ApplyExercise(v1::EVENT_STATUS_ACTUAL, context));
  event->set_msg_type(v1::MESSAGE_TYPE_ALERT);
  event->set_hazard(HazardFromGdacsType(type));
  event->set_source_hazard_code(type);
  event->set_scope("Public");
  std::string level = String(props, "alertlevel");
  for (char& c : level) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!level.empty()) event->mutable_metrics()->set_gdacs_alert(level);
  event->set_severity(SeverityFromGdacsLevel(level));
  const std::string modified_text = String(props, "datemodified");
  std::optional<int64_t> modified = ParseIsoTimeMs(modified_text);
  if (!modified) return InvalidArgument("\"" + modified_text + "\" is not an ISO 8601 date-time", "properties.datemodified");
  event->set_revision(*modified);
  event->set_sent_ms(*modified);
  event->set_onset_ms(ParseIsoTimeMs(String(props, "fromdate")).value_or(*modified));
  if (context.received_ms != 0) event->set_received_ms(context.received_ms);
  event->set_place(String(props, "country"));
  if (const json::value* url = props.if_contains("url"); url && url->is_object())
    event->set_web_url(String(url->get_object(), "report"));
  v1::LocalizedText* text = event->add_texts();
  text->set_language("en");
  text->set_headline(String(props, "name"));
  text->set_description(String(props, "htmldescription"));
  if (const json::value* data = props.if_contains("severitydata"); data && data->is_object()) {
    const json::object& severity = data->get_object();
    auto value = Number(severity.if_contains("severity"));
    const std::string unit = String(severity, "severityunit");
    if (value && unit == "M") event->mutable_metrics()->set_magnitude(*value);
    if (value && unit == "km/h") event->mutable_metrics()->set_max_wind_kmh(*value);
    if (value && *value > 0 && unit == "ha") event->mutable_metrics()->set_burned_area_ha(*value);
    if (value && *value > 0 && unit == "km2") event->mutable_metrics()->set_affected_area_km2(*value);
  }
  return Status::Ok();
}

}  // namespace

bool LooksLikeGdacsApi(const json::value& value) {
  const json::object* root = value.if_object();
  if (root == nullptr) return false;
  const json::value* type = root->if_contains("type");
  if (type == nullptr || !type->is_string()) return false;
  const json::object* props = nullptr;
  if (type->get_string() == "Feature") {
    props = Properties(value);
  } else if (type->get_string() == "FeatureCollection") {
    const json::value* features = root->if_contains("features");
    if (features && features->is_array() && !features->get_array().empty())
      props = Properties(features->get_array()[0]);
  }
  return props && props->contains("eventtype") && props->contains("eventid");
}

Result<ParsedFeed> ParseGdacsApi(const json::value& value, const FeedContext& context) {
  // The shape checks below (root.at("type"), root.at("features")) rely on it;
  // callers other than the format detector may hand over any JSON (found by
  // fuzz_gdacs_api: a "Featuru" threw out of json::object::at).
  if (!LooksLikeGdacsApi(value)) {
    return InvalidArgument("not a GDACS API document: needs type Feature or FeatureCollection with "
                           "properties.eventtype and properties.eventid", "type");
  }
  ParsedFeed feed;
  const json::object& root = value.as_object();
  v1::CrisisEvent event;
  if (root.at("type").as_string() == "Feature") {
    feed.format = "gdacs-api-event";
    feed.kind = ParsedFeed::Kind::kDetail;
    feed.feature_count = 1;
    const json::object* props = Properties(value);
    if (props == nullptr) return InvalidArgument("must be an object", "properties");
    AMPARO_RETURN_IF_ERROR(FillCommon(*props, context, &event));
    if (const json::value* geometry = root.if_contains("geometry"); geometry && geometry->is_object()) {
      const json::object& g = geometry->get_object();
      if (String(g, "type") == "Point" && g.contains("coordinates") &&
          !ReadPosition(g.at("coordinates"), event.mutable_origin())) {
        return InvalidArgument("must be [lon, lat] in range", "geometry.coordinates");
      }
    }
    feed.events.push_back(std::move(event));
    return feed;
  }

  feed.format = "gdacs-api-geometry";
  const json::array& features = root.at("features").as_array();
  feed.feature_count = static_cast<int>(features.size());
  bool common_done = false;
  std::string first_key;
  for (size_t i = 0; i < features.size(); ++i) {
    const std::string where = "features[" + std::to_string(i) + "]";
    const json::object* props = Properties(features[i]);
    const json::object* geometry = nullptr;
    if (const json::object* f = features[i].if_object())
      if (const json::value* g = f->if_contains("geometry")) geometry = g->if_object();
    if (props == nullptr || geometry == nullptr) {
      feed.rejections.push_back({static_cast<int>(i), "", where, "must have properties and geometry objects"});
      continue;
    }
    const std::string key = String(*props, "eventtype") + String(*props, "eventid");
    if (!common_done) {
      if (Status st = FillCommon(*props, context, &event); !st.ok()) return st;
      common_done = true;
      first_key = key;
    } else if (key != first_key) {
      feed.rejections.push_back({static_cast<int>(i), key, where + ".properties.eventid",
                                 "belongs to another event than " + first_key});
      continue;
    }
    const std::string type = String(*geometry, "type");
    const json::value* coordinates = geometry->if_contains("coordinates");
    if (coordinates == nullptr) {
      feed.rejections.push_back({static_cast<int>(i), key, where + ".geometry.coordinates", "missing"});
      continue;
    }
    if (type == "Point") {
      if (!ReadPosition(*coordinates, event.mutable_origin()))
        feed.rejections.push_back({static_cast<int>(i), key, where + ".geometry.coordinates", "must be [lon, lat] in range"});
      continue;
    }
    // The cyclone track between forecast points: the buffers around it are
    // the areas; a line has no inside to place anyone in.
    if (type == "LineString" || type == "MultiLineString") continue;
    v1::Area area;
    area.set_footprint_model("source");
    area.set_description(TrimCopy(String(*props, "polygonlabel") + " " + String(*props, "Class")));
    bool ok = true;
    if (type == "Polygon") {
      ok = ReadRing(*coordinates, area.add_polygons());
    } else if (type == "MultiPolygon" && coordinates->is_array()) {
      for (const json::value& polygon : coordinates->get_array()) ok = ok && ReadRing(polygon, area.add_polygons());
    } else {
      ok = false;
    }
    if (!ok) {
      feed.rejections.push_back({static_cast<int>(i), key, where + ".geometry",
                                 "must be a Point, Polygon or MultiPolygon with rings of >= 4 [lon, lat] positions"});
      continue;
    }
    *event.add_areas() = std::move(area);
  }
  if (common_done && (event.has_origin() || event.areas_size() > 0)) feed.events.push_back(std::move(event));
  return feed;
}

}  // namespace amparo::ingest
