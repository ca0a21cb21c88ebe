#include "services/ingest/gdacs_rss.h"

#include <libxml/tree.h>

#include <charconv>
#include <cmath>

namespace amparo::ingest {
namespace {

constexpr std::string_view kGeoNamespace = "http://www.w3.org/2003/01/geo/wgs84_pos#";
constexpr std::string_view kGeoRssNamespace = "http://www.georss.org/georss";

std::optional<double> ToDouble(std::string_view text) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::vector<double> Numbers(std::string_view text, bool* ok) {
  std::vector<double> out;
  *ok = true;
  size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
    size_t end = pos;
    while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    if (end > pos) {
      auto n = ToDouble(text.substr(pos, end - pos));
      if (!n) *ok = false;
      out.push_back(n.value_or(0));
    }
    pos = end;
  }
  return out;
}

// "Tropical Storm (maximum wind speed of 111 km/h)" -> 111; nullopt when the
// text does not say so.
std::optional<double> GdacsWindFromSeverityText(std::string_view text) {
  constexpr std::string_view kLead = "maximum wind speed of ";
  size_t start = text.find(kLead);
  if (start == std::string_view::npos) return std::nullopt;
  start += kLead.size();
  size_t end = text.find(" km/h", start);
  if (end == std::string_view::npos) return std::nullopt;
  auto wind = ToDouble(text.substr(start, end - start));
  if (!wind || *wind <= 0) return std::nullopt;
  return wind;
}

bool InRange(double lat, double lon) { return std::abs(lat) <= 90 && std::abs(lon) <= 180; }

std::string Gdacs(const xmlNode* item, std::string_view name) { return XmlChildText(item, name, kGdacsNamespace); }

// The first problem of one item, or nullopt.
struct ItemError {
  std::string field;
  std::string reason;
};

std::optional<ItemError> ReadItem(const xmlNode* item, const FeedContext& context, v1::CrisisEvent* event,
                                  std::vector<ParseWarning>* warnings, const std::string& where) {
  std::string type = Gdacs(item, "eventtype");
  const std::string event_id = Gdacs(item, "eventid");
  if (type.empty()) return ItemError{"gdacs:eventtype", "missing"};
  if (event_id.empty()) return ItemError{"gdacs:eventid", "missing"};
  for (char& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string source_id = type + event_id;
  event->set_source("gdacs");
  event->set_source_id(source_id);
  event->set_event_id("gdacs:" + source_id);
  if (std::string episode = Gdacs(item, "episodeid"); !episode.empty())
    event->add_id_aliases(source_id + "-" + episode);
  // GLIDE numbers are global ids: ReliefWeb and others join the incident by them.
  if (std::string glide = Gdacs(item, "glide"); !glide.empty()) event->add_id_aliases("glide:" + glide);
  event->set_status(ApplyExercise(v1::EVENT_STATUS_ACTUAL, context));
  event->set_msg_type(v1::MESSAGE_TYPE_ALERT);
  event->set_hazard(HazardFromGdacsType(type));
  event->set_source_hazard_code(type);
  std::string level = Gdacs(item, "alertlevel");
  for (char& c : level) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!level.empty()) event->mutable_metrics()->set_gdacs_alert(level);
  event->set_severity(SeverityFromGdacsLevel(level));
  event->set_scope("Public");
  if (context.received_ms != 0) event->set_received_ms(context.received_ms);

  const std::string pub_text = XmlChildText(item, "pubDate");
  std::optional<int64_t> published = ParseRfc822TimeMs(pub_text);
  std::optional<int64_t> modified = ParseRfc822TimeMs(Gdacs(item, "datemodified"));
  if (!published && !modified) return ItemError{"pubDate", "\"" + pub_text + "\" is not an RFC 822 date"};
  event->set_sent_ms(modified.value_or(*published));
  event->set_revision(std::max(modified.value_or(0), published.value_or(0)));
  event->set_onset_ms(ParseRfc822TimeMs(Gdacs(item, "fromdate")).value_or(event->sent_ms()));

  if (const xmlNode* severity = XmlChild(item, "severity", kGdacsNamespace)) {
    const std::string unit = XmlAttribute(severity, "unit");
    auto value = ToDouble(XmlAttribute(severity, "value"));
    if (value && unit == "M") event->mutable_metrics()->set_magnitude(*value);
    if (value && unit == "km/h") event->mutable_metrics()->set_max_wind_kmh(*value);
    if (value && *value > 0 && unit == "ha") event->mutable_metrics()->set_burned_area_ha(*value);
    if (value && *value > 0 && unit == "km2") event->mutable_metrics()->set_affected_area_km2(*value);
    const std::string text = XmlText(severity);
    // The value is the event's maximum so far; the text names the storm as it
    // is at this advisory ("Tropical Depression (maximum wind speed of 46 km/h)").
    if (auto wind = GdacsWindFromSeverityText(text); wind && unit == "km/h")
      event->mutable_metrics()->set_current_wind_kmh(*wind);
    if (size_t depth = text.find("Depth:"); depth != std::string::npos) {
      size_t start = depth + 6, end = start;
      while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) ++end;
      if (auto km = ToDouble(std::string_view(text).substr(start, end - start))) event->mutable_metrics()->set_depth_km(*km);
    }
  }
  event->set_place(Gdacs(item, "country"));
  event->set_web_url(XmlChildText(item, "link"));
  v1::LocalizedText* text = event->add_texts();
  text->set_language("en");
  text->set_headline(XmlChildText(item, "title"));
  text->set_description(XmlChildText(item, "description"));

  bool have_point = false;
  if (const xmlNode* point = XmlChild(item, "point", kGeoRssNamespace)) {
    bool ok;
    std::vector<double> n = Numbers(XmlText(point), &ok);
    if (!ok || n.size() != 2 || !InRange(n[0], n[1]))
      return ItemError{"georss:point", "\"" + XmlText(point) + "\" is not \"lat lon\" in range"};
    event->mutable_origin()->set_lat(n[0]);
    event->mutable_origin()->set_lon(n[1]);
    have_point = true;
  } else if (const xmlNode* geo = XmlChild(item, "Point", kGeoNamespace)) {
    auto lat = ToDouble(XmlChildText(geo, "lat", kGeoNamespace));
    auto lon = ToDouble(XmlChildText(geo, "long", kGeoNamespace));
    if (!lat || !lon || !InRange(*lat, *lon)) return ItemError{"geo:Point", "lat/long missing or out of range"};
    event->mutable_origin()->set_lat(*lat);
    event->mutable_origin()->set_lon(*lon);
    have_point = true;
  }
  bool have_polygon = false;
  for (const xmlNode* child : XmlChildren(item)) {
    if (XmlLocalName(child) != "polygon" || XmlNamespace(child) != kGeoRssNamespace) continue;
    bool ok;
    std::vector<double> n = Numbers(XmlText(child), &ok);
    if (!ok || n.size() < 8 || n.size() % 2 != 0)
      return ItemError{"georss:polygon", "must be at least 4 \"lat lon\" pairs"};
    v1::Area* area = event->add_areas();
    area->set_footprint_model("source");
    area->set_description(event->place());
    v1::Polygon* polygon = area->add_polygons();
    for (size_t i = 0; i < n.size(); i += 2) {
      if (!InRange(n[i], n[i + 1])) return ItemError{"georss:polygon", "vertex out of range"};
      v1::LatLon* v = polygon->add_vertices();
      v->set_lat(n[i]);
      v->set_lon(n[i + 1]);
    }
    if (polygon->vertices(0).lat() != n[n.size() - 2] || polygon->vertices(0).lon() != n.back())
      *polygon->add_vertices() = polygon->vertices(0);
    have_polygon = true;
  }
  if (!have_point && !have_polygon) {
    return ItemError{"georss:point",
                     "no georss:point, geo:Point or georss:polygon (a bounding box alone cannot place the event)"};
  }
  if (!have_polygon) {
    if (const xmlNode* bbox = XmlChild(item, "bbox", kGdacsNamespace)) {
      bool ok;
      std::vector<double> n = Numbers(XmlText(bbox), &ok);  // lonmin lonmax latmin latmax
      if (!ok || n.size() != 4) return ItemError{"gdacs:bbox", "must be \"lonmin lonmax latmin latmax\""};
      if (!InRange(n[2], n[0]) || !InRange(n[3], n[1])) {
        warnings->push_back({"bbox-crosses-antimeridian", where + ": gdacs:bbox " + XmlText(bbox) + " dropped"});
      } else {
        v1::Area* area = event->add_areas();
        area->set_description(event->place());
        area->set_footprint_model("gdacs-bbox");
        v1::Polygon* polygon = area->add_polygons();
        for (auto [lat, lon] : {std::pair{n[2], n[0]}, {n[2], n[1]}, {n[3], n[1]}, {n[3], n[0]}, {n[2], n[0]}}) {
          v1::LatLon* v = polygon->add_vertices();
          v->set_lat(lat);
          v->set_lon(lon);
        }
        if (std::string iso3 = Gdacs(item, "iso3"); !iso3.empty()) {
          v1::Geocode* code = area->add_geocodes();
          code->set_name("ISO3");
          code->set_value(iso3);
        }
      }
    }
  }
  return std::nullopt;
}

}  // namespace

bool LooksLikeGdacsRss(const XmlDocument& doc) {
  const xmlNode* root = doc.root();
  if (XmlLocalName(root) != "rss") return false;
  for (const xmlNode* item : XmlChildren(XmlChild(root, "channel"))) {
    if (XmlLocalName(item) != "item") continue;
    for (const xmlNode* child : XmlChildren(item))
      if (XmlNamespace(child) == kGdacsNamespace) return true;
  }
  return false;
}

Result<ParsedFeed> ParseGdacsRss(const XmlDocument& doc, const FeedContext& context) {
  const xmlNode* root = doc.root();
  const xmlNode* channel = XmlChild(root, "channel");
  if (XmlLocalName(root) != "rss" || channel == nullptr)
    return InvalidArgument("not an RSS feed (<rss><channel>)", "rss");
  ParsedFeed feed;
  feed.format = "gdacs-rss";
  int index = 0;
  for (const xmlNode* item : XmlChildren(channel)) {
    if (XmlLocalName(item) != "item") continue;
    const std::string where = "item[" + std::to_string(index) + "]";
    v1::CrisisEvent event;
    if (auto error = ReadItem(item, context, &event, &feed.warnings, where)) {
      feed.rejections.push_back({index, XmlChildText(item, "guid"), where + "." + error->field, error->reason});
    } else {
      feed.events.push_back(std::move(event));
    }
    ++index;
  }
  feed.feature_count = index;
  return feed;
}

}  // namespace amparo::ingest
