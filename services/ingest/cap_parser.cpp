#include "services/ingest/cap_parser.h"

#include <libxml/tree.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "services/ingest/cap_schema.h"

namespace amparo::ingest {
namespace {

constexpr std::string_view kAtomNamespace = "http://www.w3.org/2005/Atom";
constexpr std::string_view kXmlDsigNamespace = "http://www.w3.org/2000/09/xmldsig#";
constexpr std::string_view kGeoNamespace = "http://www.w3.org/2003/01/geo/wgs84_pos#";
constexpr std::string_view kGeoRssNamespace = "http://www.georss.org/georss";

// A reason an alert (or the part of it being read) is refused.
struct AlertError {
  std::string field;
  std::string reason;
};

bool IsCapAlert(const xmlNode* node) {
  return node && node->type == XML_ELEMENT_NODE && XmlLocalName(node) == "alert" &&
         CapVersionFromNamespace(XmlNamespace(node)).has_value();
}

// The CAP alert an Atom entry or RSS item carries: in <content>, or a direct child.
const xmlNode* EmbeddedAlert(const xmlNode* entry) {
  for (const xmlNode* child : XmlChildren(entry)) {
    if (IsCapAlert(child)) return child;
    if (XmlLocalName(child) == "content") {
      for (const xmlNode* inner : XmlChildren(child))
        if (IsCapAlert(inner)) return inner;
    }
  }
  return nullptr;
}

std::optional<double> ParseDouble(std::string_view text) {
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::vector<std::string> SplitWhitespace(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
    size_t end = pos;
    while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    if (end > pos) out.emplace_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

// "lat,lon" -> LatLon, checking ranges.
std::optional<AlertError> ParsePoint(std::string_view pair, const std::string& field, v1::LatLon* out) {
  size_t comma = pair.find(',');
  if (comma == std::string_view::npos) return AlertError{field, "\"" + std::string(pair) + "\" is not lat,lon"};
  auto lat = ParseDouble(pair.substr(0, comma));
  auto lon = ParseDouble(pair.substr(comma + 1));
  if (!lat || !lon) return AlertError{field, "\"" + std::string(pair) + "\" is not lat,lon"};
  if (*lat < -90 || *lat > 90) return AlertError{field, "latitude " + std::string(pair.substr(0, comma)) + " out of range -90..90"};
  if (*lon < -180 || *lon > 180)
    return AlertError{field, "longitude " + std::string(pair.substr(comma + 1)) + " out of range -180..180"};
  out->set_lat(*lat);
  out->set_lon(*lon);
  return std::nullopt;
}

bool IsValidCapIdentifier(std::string_view id) {
  if (id.empty()) return false;
  for (char c : id) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == ',' || c == '<' || c == '&') return false;
  }
  return true;
}

v1::EventStatus MapStatus(std::string_view s) {
  if (s == "Actual") return v1::EVENT_STATUS_ACTUAL;
  if (s == "Exercise") return v1::EVENT_STATUS_EXERCISE;
  if (s == "System") return v1::EVENT_STATUS_SYSTEM;
  if (s == "Test") return v1::EVENT_STATUS_TEST;
  if (s == "Draft") return v1::EVENT_STATUS_DRAFT;
  return v1::EVENT_STATUS_UNSPECIFIED;
}

v1::MessageType MapMsgType(std::string_view s) {
  if (s == "Alert") return v1::MESSAGE_TYPE_ALERT;
  if (s == "Update") return v1::MESSAGE_TYPE_UPDATE;
  if (s == "Cancel") return v1::MESSAGE_TYPE_CANCEL;
  if (s == "Ack") return v1::MESSAGE_TYPE_ACK;
  if (s == "Error") return v1::MESSAGE_TYPE_ERROR;
  return v1::MESSAGE_TYPE_UNSPECIFIED;
}

v1::Severity MapSeverity(std::string_view s) {
  if (s == "Extreme") return v1::SEVERITY_EXTREME;
  if (s == "Severe") return v1::SEVERITY_SEVERE;
  if (s == "Moderate") return v1::SEVERITY_MODERATE;
  if (s == "Minor") return v1::SEVERITY_MINOR;
  if (s == "Unknown") return v1::SEVERITY_UNKNOWN;
  return v1::SEVERITY_UNSPECIFIED;
}

v1::Urgency MapUrgency(std::string_view s) {
  if (s == "Immediate") return v1::URGENCY_IMMEDIATE;
  if (s == "Expected") return v1::URGENCY_EXPECTED;
  if (s == "Future") return v1::URGENCY_FUTURE;
  if (s == "Past") return v1::URGENCY_PAST;
  if (s == "Unknown") return v1::URGENCY_UNKNOWN;
  return v1::URGENCY_UNSPECIFIED;
}

v1::Certainty MapCertainty(std::string_view s) {
  if (s == "Observed") return v1::CERTAINTY_OBSERVED;
  // CAP 1.0 called "Likely" "Very Likely"; 1.1+ renamed it.
  if (s == "Likely" || s == "Very Likely") return v1::CERTAINTY_LIKELY;
  if (s == "Possible") return v1::CERTAINTY_POSSIBLE;
  if (s == "Unlikely") return v1::CERTAINTY_UNLIKELY;
  if (s == "Unknown") return v1::CERTAINTY_UNKNOWN;
  return v1::CERTAINTY_UNSPECIFIED;
}

v1::HazardKind HazardFromCategory(std::string_view category) {
  if (category == "Met") return v1::HAZARD_KIND_SEVERE_WEATHER;
  if (category == "Fire") return v1::HAZARD_KIND_WILDFIRE;
  return v1::HAZARD_KIND_OTHER;
}

// ---- lenient normalisation of a copy ---------------------------------------

int AreaChildRank(std::string_view name) {
  if (name == "areaDesc") return 0;
  if (name == "polygon") return 1;
  if (name == "circle") return 2;
  if (name == "geocode") return 3;
  if (name == "altitude") return 4;
  if (name == "ceiling") return 5;
  return 6;
}

// Re-inserts the element children of `parent` ordered by `rank` (stable);
// returns true when the order changed.
template <typename RankFn>
bool ReorderChildren(xmlNodePtr parent, RankFn rank) {
  std::vector<xmlNodePtr> elements;
  for (xmlNodePtr child = parent->children; child != nullptr; child = child->next)
    if (child->type == XML_ELEMENT_NODE) elements.push_back(child);
  std::vector<xmlNodePtr> sorted = elements;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](xmlNodePtr a, xmlNodePtr b) { return rank(XmlLocalName(a)) < rank(XmlLocalName(b)); });
  if (sorted == elements) return false;
  for (xmlNodePtr node : sorted) {
    xmlUnlinkNode(node);
    xmlAddChild(parent, node);
  }
  return true;
}

struct Normalised {
  std::vector<ParseWarning> warnings;
};

// Applies the known-deviation fixes to `alert` (a private copy).
Normalised NormaliseCopy(xmlNodePtr alert, CapVersion version, const std::string& where) {
  Normalised out;
  std::vector<xmlNodePtr> signatures;
  for (xmlNodePtr child = alert->children; child != nullptr; child = child->next) {
    if (child->type != XML_ELEMENT_NODE) continue;
    if (version != CapVersion::k12 && XmlNamespace(child) == kXmlDsigNamespace) {
      signatures.push_back(child);
      continue;
    }
    if (XmlLocalName(child) != "info") continue;
    for (xmlNodePtr part = child->children; part != nullptr; part = part->next) {
      if (part->type != XML_ELEMENT_NODE) continue;
      const std::string_view name = XmlLocalName(part);
      if (name == "eventCode" || name == "parameter") {
        if (ReorderChildren(part, [](std::string_view n) { return n == "valueName" ? 0 : 1; }))
          out.warnings.push_back({"value-valuename-order", where + " " + std::string(name)});
      } else if (name == "area") {
        bool changed_pair = false;
        for (xmlNodePtr code = part->children; code != nullptr; code = code->next) {
          if (code->type == XML_ELEMENT_NODE && XmlLocalName(code) == "geocode")
            changed_pair |= ReorderChildren(code, [](std::string_view n) { return n == "valueName" ? 0 : 1; });
        }
        if (changed_pair) out.warnings.push_back({"value-valuename-order", where + " area geocode"});
        if (ReorderChildren(part, AreaChildRank))
          out.warnings.push_back({"polygon-after-geocode", where + " area"});
      }
    }
  }
  for (xmlNodePtr signature : signatures) {
    xmlUnlinkNode(signature);
    xmlFreeNode(signature);
    out.warnings.push_back({"signature-in-cap11", where + ": XML-DSig Signature in CAP " +
                                                      std::string(CapVersionName(version)) +
                                                      " (allowed from 1.2); not verified here"});
  }
  return out;
}

// Schema-validates `alert`; in lenient mode retries on a normalised copy.
// Returns the accepted warnings, or the first schema error of the original.
Result<std::vector<ParseWarning>> ValidateAlert(xmlNodePtr alert, CapVersion version, ValidationMode mode,
                                                const std::string& where) {
  auto errors = ValidateCapElement(alert, version);
  if (!errors.ok()) return errors.status();
  if (errors->empty()) return std::vector<ParseWarning>{};
  Status schema_error = InvalidArgument(
      "CAP " + std::string(CapVersionName(version)) + " schema: " + errors->front(), "alert");
  if (mode == ValidationMode::kStrict) return schema_error;

  std::unique_ptr<xmlDoc, void (*)(xmlDocPtr)> copy_doc(xmlNewDoc(BAD_CAST "1.0"), xmlFreeDoc);
  if (!copy_doc) return Internal("libxml2: cannot allocate a document");
  xmlNodePtr copy = xmlDocCopyNode(alert, copy_doc.get(), 1);
  if (copy == nullptr) return Internal("libxml2: cannot copy the alert");
  xmlDocSetRootElement(copy_doc.get(), copy);
  Normalised normalised = NormaliseCopy(copy, version, where);
  if (normalised.warnings.empty()) return schema_error;
  auto retry = ValidateCapElement(copy, version);
  if (!retry.ok()) return retry.status();
  if (!retry->empty()) return schema_error;
  return std::move(normalised.warnings);
}

// ---- reading an alert ----------------------------------------------------

struct InfoBlock {
  const xmlNode* node;
  std::string language;
};

class AlertReader {
 public:
  AlertReader(const xmlNode* alert, const FeedContext& context, std::string where)
      : alert_(alert), ns_(XmlNamespace(alert)), context_(context), where_(std::move(where)) {}

  // Fills `event`; warnings go to `warnings`. `item` is the RSS item or Atom
  // entry around the alert (nullptr for a root alert), used for its point and link.
  std::optional<AlertError> Read(const xmlNode* item, v1::CrisisEvent* event, std::vector<ParseWarning>* warnings) {
    const CapVersion version = *CapVersionFromNamespace(ns_);
    auto accepted = ValidateAlert(const_cast<xmlNode*>(alert_), version, context_.validation, where_);
    if (!accepted.ok()) {
      if (accepted.status().code() != StatusCode::kInvalidArgument) internal_error_ = accepted.status();
      return AlertError{accepted.status().field(), accepted.status().message()};
    }
    for (ParseWarning& w : *accepted) warnings->push_back(std::move(w));

    const std::string identifier = Text("identifier");
    const std::string sender = Text("sender");
    if (!IsValidCapIdentifier(identifier))
      return AlertError{"alert.identifier", "\"" + identifier + "\" must be non-empty without spaces, commas, '<' or '&'"};
    if (!IsValidCapIdentifier(sender))
      return AlertError{"alert.sender", "\"" + sender + "\" must be non-empty without spaces, commas, '<' or '&'"};
    const std::string sent_text = Text("sent");
    std::optional<int64_t> sent = ParseIsoTimeMs(sent_text);
    if (!sent) return AlertError{"alert.sent", "\"" + sent_text + "\" is not a CAP date-time"};
    const std::string status_text = Text("status");
    const v1::EventStatus status = MapStatus(status_text);
    if (status == v1::EVENT_STATUS_UNSPECIFIED) return AlertError{"alert.status", "unknown status \"" + status_text + "\""};
    const std::string msg_type_text = Text("msgType");
    const v1::MessageType msg_type = MapMsgType(msg_type_text);
    if (msg_type == v1::MESSAGE_TYPE_UNSPECIFIED)
      return AlertError{"alert.msgType", "unknown msgType \"" + msg_type_text + "\""};
    if (msg_type == v1::MESSAGE_TYPE_ACK || msg_type == v1::MESSAGE_TYPE_ERROR)
      return AlertError{"alert.msgType", msg_type_text + " messages acknowledge other messages and carry no event"};

    event->set_source(std::string(kCapSource));
    event->set_source_id(sender + ":" + identifier);
    event->set_event_id(std::string(kCapSource) + ":" + event->source_id());
    event->set_status(ApplyExercise(status, context_));
    event->set_msg_type(msg_type);
    event->set_scope(Text("scope"));
    event->set_sent_ms(*sent);
    event->set_revision(*sent);
    if (context_.received_ms != 0) event->set_received_ms(context_.received_ms);

    if (auto error = ReadReferences(event, warnings)) return error;

    std::vector<const xmlNode*> infos;
    for (const xmlNode* child : XmlChildren(alert_))
      if (XmlLocalName(child) == "info" && XmlNamespace(child) == ns_) infos.push_back(child);
    std::set<std::string> languages, area_keys;
    int64_t expires = 0;
    for (size_t i = 0; i < infos.size(); ++i) {
      const xmlNode* info = infos[i];
      const std::string info_where = "alert.info[" + std::to_string(i) + "]";
      std::string language = XmlChildText(info, "language", ns_);
      if (language.empty()) language = "en-US";  // the CAP default
      if (languages.insert(language).second) {
        v1::LocalizedText* text = event->add_texts();
        text->set_language(language);
        text->set_headline(XmlChildText(info, "headline", ns_));
        text->set_description(XmlChildText(info, "description", ns_));
        text->set_instruction(XmlChildText(info, "instruction", ns_));
      }
      if (i == 0) {
        if (auto error = ReadFirstInfo(info, *sent, event)) return error;
      }
      const std::string expires_text = XmlChildText(info, "expires", ns_);
      if (!expires_text.empty()) {
        auto t = ParseIsoTimeMs(expires_text);
        if (!t) return AlertError{info_where + ".expires", "\"" + expires_text + "\" is not a CAP date-time"};
        expires = std::max(expires, *t);
      }
      int area_index = 0;
      for (const xmlNode* area_node : XmlChildren(info)) {
        if (XmlLocalName(area_node) != "area") continue;
        v1::Area area;
        const std::string area_where = info_where + ".area[" + std::to_string(area_index++) + "]";
        if (auto error = ReadArea(area_node, area_where, &area, warnings)) return error;
        std::string key;
        v1::Area keyed = area;
        keyed.clear_description();
        keyed.SerializeToString(&key);
        if (area_keys.insert(key).second) *event->add_areas() = std::move(area);
      }
    }
    if (expires != 0) event->set_expires_ms(expires);
    if (event->onset_ms() == 0) event->set_onset_ms(*sent);
    if (event->hazard() == v1::HAZARD_KIND_UNSPECIFIED) event->set_hazard(v1::HAZARD_KIND_OTHER);

    if (item != nullptr) ReadItemContext(item, event);
    if (gdacs_) ApplyGdacs(identifier, event);
    return std::nullopt;
  }

  const Status& internal_error() const { return internal_error_; }

 private:
  std::string Text(std::string_view name) const { return XmlChildText(alert_, name, ns_); }

  std::optional<AlertError> ReadReferences(v1::CrisisEvent* event, std::vector<ParseWarning>* warnings) {
    const xmlNode* references = XmlChild(alert_, "references", ns_);
    if (references == nullptr) return std::nullopt;
    const std::vector<std::string> triples = SplitWhitespace(XmlText(references));
    if (triples.empty()) {
      if (context_.validation == ValidationMode::kStrict)
        return AlertError{"alert.references", "empty: must list \"sender,identifier,sent\" triples"};
      warnings->push_back({"empty-references", where_ + ": empty <references/> ignored"});
      return std::nullopt;
    }
    int64_t earliest = INT64_MAX;
    std::string earliest_id;
    for (const std::string& triple : triples) {
      size_t first = triple.find(',');
      size_t second = first == std::string::npos ? std::string::npos : triple.find(',', first + 1);
      if (second == std::string::npos || triple.find(',', second + 1) != std::string::npos)
        return AlertError{"alert.references", "\"" + triple + "\" is not sender,identifier,sent"};
      const std::string ref_sender = triple.substr(0, first);
      const std::string ref_id = triple.substr(first + 1, second - first - 1);
      auto ref_sent = ParseIsoTimeMs(triple.substr(second + 1));
      if (ref_sender.empty() || ref_id.empty() || !ref_sent)
        return AlertError{"alert.references", "\"" + triple + "\" is not sender,identifier,sent"};
      v1::EventReference* ref = event->add_references();
      ref->set_source(std::string(kCapSource));
      ref->set_source_id(ref_sender + ":" + ref_id);
      event->add_id_aliases(ref->source_id());
      if (*ref_sent < earliest) {
        earliest = *ref_sent;
        earliest_id = ref->source_id();
      }
    }
    // Every revision of one CAP incident shares the id of its first message.
    if (event->msg_type() != v1::MESSAGE_TYPE_ALERT) event->set_event_id(std::string(kCapSource) + ":" + earliest_id);
    return std::nullopt;
  }

  std::optional<AlertError> ReadFirstInfo(const xmlNode* info, int64_t sent, v1::CrisisEvent* event) {
    const std::string event_text = XmlChildText(info, "event", ns_);
    event->set_source_hazard_code(event_text);
    event->set_severity(MapSeverity(XmlChildText(info, "severity", ns_)));
    event->set_urgency(MapUrgency(XmlChildText(info, "urgency", ns_)));
    event->set_certainty(MapCertainty(XmlChildText(info, "certainty", ns_)));
    event->set_web_url(XmlChildText(info, "web", ns_));
    std::optional<v1::HazardKind> hazard = HazardFromText(event_text);
    if (!hazard) hazard = HazardFromText(XmlChildText(info, "headline", ns_));
    if (!hazard) hazard = HazardFromCategory(XmlChildText(info, "category", ns_));
    event->set_hazard(*hazard);
    for (const char* name : {"onset", "effective"}) {
      const std::string text = XmlChildText(info, name, ns_);
      if (text.empty()) continue;
      auto t = ParseIsoTimeMs(text);
      if (!t) return AlertError{std::string("alert.info[0].") + name, "\"" + text + "\" is not a CAP date-time"};
      event->set_onset_ms(*t);
      break;
    }
    (void)sent;
    for (const xmlNode* child : XmlChildren(info)) {
      if (XmlLocalName(child) != "parameter") continue;
      std::string name = XmlChildText(child, "valueName", ns_);
      std::string value = XmlChildText(child, "value", ns_);
      parameters_.emplace(std::move(name), std::move(value));
    }
    gdacs_ = parameters_.count("eventid") && parameters_.count("eventtype") && parameters_.count("alertlevel") &&
             !parameters_["eventid"].empty() && !parameters_["eventtype"].empty();
    return std::nullopt;
  }

  std::optional<AlertError> ReadArea(const xmlNode* node, const std::string& where, v1::Area* area,
                                     std::vector<ParseWarning>* warnings) {
    area->set_description(XmlChildText(node, "areaDesc", ns_));
    area->set_footprint_model("source");
    int polygon_index = 0, circle_index = 0;
    for (const xmlNode* child : XmlChildren(node)) {
      const std::string_view name = XmlLocalName(child);
      if (name == "polygon") {
        const std::string field = where + ".polygon[" + std::to_string(polygon_index++) + "]";
        v1::Polygon polygon;
        std::optional<AlertError> problem;
        std::string deviation;  // the lenient warning that lets us drop this polygon instead
        const std::vector<std::string> pairs = SplitWhitespace(XmlText(child));
        if (pairs.empty()) {
          problem = AlertError{field, "empty: needs at least 4 lat,lon pairs"};
          deviation = "empty-polygon";
        }
        for (const std::string& pair : pairs) {
          if (problem) break;
          problem = ParsePoint(pair, field, polygon.add_vertices());
          // GDACS draws buffers around epicentres near the antimeridian with
          // longitudes like 180.27: a producer bug, not a hostile document.
          if (problem && problem->reason.find("out of range") != std::string::npos) deviation = "coordinate-out-of-range";
        }
        if (!problem) {
          const v1::LatLon& first = polygon.vertices(0);
          const v1::LatLon& last = polygon.vertices(polygon.vertices_size() - 1);
          const bool closed = first.lat() == last.lat() && first.lon() == last.lon();
          if (!closed && polygon.vertices_size() >= 3) {
            if (context_.validation == ValidationMode::kStrict)
              return AlertError{field, "not closed: the first and last lat,lon pairs differ"};
            *polygon.add_vertices() = first;
            warnings->push_back({"polygon-not-closed", field + ": closed by repeating the first vertex"});
          }
          if (polygon.vertices_size() < 4) {
            problem = AlertError{field, "needs at least 4 lat,lon pairs (a closed ring of 3 points), got " +
                                            std::to_string(polygon.vertices_size())};
            deviation = "degenerate-polygon";
          }
        }
        if (problem) {
          if (context_.validation == ValidationMode::kStrict || deviation.empty()) return problem;
          warnings->push_back({deviation, field + ": polygon ignored: " + problem->reason});
          continue;
        }
        *area->add_polygons() = std::move(polygon);
      } else if (name == "circle") {
        const std::string field = where + ".circle[" + std::to_string(circle_index++) + "]";
        const std::vector<std::string> parts = SplitWhitespace(XmlText(child));
        if (parts.size() != 2) return AlertError{field, "must be \"lat,lon radius_km\""};
        v1::Circle* circle = area->add_circles();
        if (auto error = ParsePoint(parts[0], field, circle->mutable_center())) return error;
        auto radius = ParseDouble(parts[1]);
        if (!radius || *radius < 0) return AlertError{field, "radius \"" + parts[1] + "\" must be a number >= 0 (km)"};
        circle->set_radius_km(*radius);
      } else if (name == "geocode") {
        v1::Geocode* code = area->add_geocodes();
        code->set_name(XmlChildText(child, "valueName", ns_));
        code->set_value(XmlChildText(child, "value", ns_));
      }
    }
    return std::nullopt;
  }

  // The RSS item or Atom entry around an embedded alert: its point and link.
  void ReadItemContext(const xmlNode* item, v1::CrisisEvent* event) {
    if (const xmlNode* point = XmlChild(item, "Point", kGeoNamespace)) {
      auto lat = ParseDouble(XmlChildText(point, "lat", kGeoNamespace));
      auto lon = ParseDouble(XmlChildText(point, "long", kGeoNamespace));
      if (lat && lon && std::abs(*lat) <= 90 && std::abs(*lon) <= 180) {
        event->mutable_origin()->set_lat(*lat);
        event->mutable_origin()->set_lon(*lon);
      }
    } else if (const xmlNode* georss = XmlChild(item, "point", kGeoRssNamespace)) {
      std::vector<std::string> parts = SplitWhitespace(XmlText(georss));
      auto lat = parts.size() == 2 ? ParseDouble(parts[0]) : std::nullopt;
      auto lon = parts.size() == 2 ? ParseDouble(parts[1]) : std::nullopt;
      if (lat && lon && std::abs(*lat) <= 90 && std::abs(*lon) <= 180) {
        event->mutable_origin()->set_lat(*lat);
        event->mutable_origin()->set_lon(*lon);
      }
    }
    if (event->web_url().empty()) {
      const xmlNode* link = XmlChild(item, "link");
      std::string href = XmlAttribute(link, "href");
      event->set_web_url(href.empty() ? XmlText(link) : href);
    }
  }

  void ApplyGdacs(const std::string& identifier, v1::CrisisEvent* event) {
    std::string type = parameters_["eventtype"];
    for (char& c : type) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const std::string source_id = type + parameters_["eventid"];
    event->set_source(std::string(kGdacsSource));
    event->set_source_id(source_id);
    event->set_event_id(std::string(kGdacsSource) + ":" + source_id);
    event->clear_id_aliases();
    event->clear_references();
    std::string episode = parameters_["currentepisodeid"];
    if (episode.empty()) episode = parameters_["episodeid"];
    if (!episode.empty()) event->add_id_aliases(source_id + "-" + episode);
    event->add_id_aliases(identifier);
    event->set_hazard(HazardFromGdacsType(type));
    event->set_source_hazard_code(type);
    std::string level = parameters_["alertlevel"];
    for (char& c : level) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!level.empty()) event->mutable_metrics()->set_gdacs_alert(level);
    event->set_severity(SeverityFromGdacsLevel(level));
    if (auto modified = ParseRfc822TimeMs(parameters_["datemodified"]); modified && *modified > event->revision())
      event->set_revision(*modified);
    if (!parameters_["country"].empty()) event->set_place(parameters_["country"]);
    // "EQ,magnitude=4.6,depth=19.09,alertleveltype=EQ;JETS=true"
    for (const std::string& part : SplitOn(parameters_["hazardcomponents"], ',')) {
      size_t eq = part.find('=');
      if (eq == std::string::npos) continue;
      auto value = ParseDouble(part.substr(eq + 1));
      if (!value) continue;
      if (part.substr(0, eq) == "magnitude") event->mutable_metrics()->set_magnitude(*value);
      if (part.substr(0, eq) == "depth") event->mutable_metrics()->set_depth_km(*value);
    }
    if (auto from = ParseRfc822TimeMs(parameters_["fromdate"])) event->set_onset_ms(*from);
  }

  static std::vector<std::string> SplitOn(const std::string& text, char separator) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t end = text.find(separator, pos);
      if (end == std::string::npos) end = text.size();
      out.push_back(text.substr(pos, end - pos));
      pos = end + 1;
    }
    return out;
  }

  const xmlNode* alert_;
  const std::string_view ns_;
  const FeedContext& context_;
  const std::string where_;
  std::map<std::string, std::string> parameters_;  // of the first info
  bool gdacs_ = false;
  Status internal_error_;
};

// Reads one alert into `feed` (an event, or a rejection at `index`).
Status ReadOneAlert(const xmlNode* alert, const xmlNode* item, int index, const FeedContext& context,
                    ParsedFeed* feed) {
  const std::string where = item ? "entry[" + std::to_string(index) + "]" : "alert";
  AlertReader reader(alert, context, where);
  v1::CrisisEvent event;
  std::vector<ParseWarning> warnings;
  std::optional<AlertError> error = reader.Read(item, &event, &warnings);
  if (!reader.internal_error().ok()) return reader.internal_error();
  for (ParseWarning& w : warnings) {
    if (item != nullptr && w.detail.rfind(where, 0) != 0) w.detail = where + "." + w.detail;
    feed->warnings.push_back(std::move(w));
  }
  if (error) {
    FeatureRejection rejection;
    rejection.index = index;
    std::string identifier = XmlChildText(alert, "identifier", XmlNamespace(alert));
    rejection.id = identifier;
    rejection.field = item ? where + "." + error->field : error->field;
    rejection.reason = error->reason;
    feed->rejections.push_back(std::move(rejection));
  } else {
    feed->events.push_back(std::move(event));
  }
  return Status::Ok();
}

Result<ParsedFeed> ParseEntries(const std::vector<const xmlNode*>& entries, std::string_view entry_name,
                                const FeedContext& context, ParsedFeed feed) {
  feed.feature_count = static_cast<int>(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const xmlNode* alert = EmbeddedAlert(entries[i]);
    if (alert == nullptr) {
      FeatureRejection rejection;
      rejection.index = static_cast<int>(i);
      rejection.id = XmlChildText(entries[i], entry_name == "item" ? "guid" : "id");
      rejection.field = std::string(entry_name) + "[" + std::to_string(i) + "]";
      rejection.reason =
          "carries no embedded CAP <alert> (a link-only index: ingest the linked CAP messages instead)";
      feed.rejections.push_back(std::move(rejection));
      continue;
    }
    AMPARO_RETURN_IF_ERROR(ReadOneAlert(alert, entries[i], static_cast<int>(i), context, &feed));
  }
  return feed;
}

}  // namespace

bool LooksLikeCapDocument(const XmlDocument& doc) {
  const xmlNode* root = doc.root();
  if (IsCapAlert(root)) return true;
  const std::string_view name = XmlLocalName(root);
  if (name == "feed") {
    for (const xmlNode* entry : XmlChildren(root))
      if (XmlLocalName(entry) == "entry" && EmbeddedAlert(entry)) return true;
  } else if (name == "rss") {
    for (const xmlNode* item : XmlChildren(XmlChild(root, "channel")))
      if (XmlLocalName(item) == "item" && EmbeddedAlert(item)) return true;
  }
  return false;
}

Result<ParsedFeed> ParseCapDocument(const XmlDocument& doc, const FeedContext& context) {
  const xmlNode* root = doc.root();
  ParsedFeed feed;
  const std::string_view name = XmlLocalName(root);
  if (IsCapAlert(root)) {
    feed.format = "cap";
    feed.kind = ParsedFeed::Kind::kDetail;
    feed.feature_count = 1;
    AMPARO_RETURN_IF_ERROR(ReadOneAlert(root, nullptr, 0, context, &feed));
    if (!feed.rejections.empty()) {
      const FeatureRejection& r = feed.rejections.front();
      return InvalidArgument(r.reason, r.field);
    }
    return feed;
  }
  if (name == "feed" && XmlNamespace(root) == kAtomNamespace) {
    feed.format = "cap-atom";
    std::vector<const xmlNode*> entries;
    for (const xmlNode* child : XmlChildren(root))
      if (XmlLocalName(child) == "entry") entries.push_back(child);
    return ParseEntries(entries, "entry", context, std::move(feed));
  }
  if (name == "rss") {
    feed.format = "cap-rss";
    const xmlNode* channel = XmlChild(root, "channel");
    if (channel == nullptr) return InvalidArgument("RSS document without <channel>", "rss");
    for (const char* required : {"title", "link", "description"}) {
      if (XmlChild(channel, required) == nullptr)
        return InvalidArgument(std::string("missing <") + required + "> (required by RSS 2.0)", "rss.channel");
    }
    std::vector<const xmlNode*> items;
    for (const xmlNode* child : XmlChildren(channel))
      if (XmlLocalName(child) == "item") items.push_back(child);
    return ParseEntries(items, "item", context, std::move(feed));
  }
  if (name == "alert") {
    return InvalidArgument("<alert> in namespace \"" + std::string(XmlNamespace(root)) +
                               "\" is not CAP 1.0, 1.1 or 1.2",
                           "alert");
  }
  return InvalidArgument("not a CAP alert, Atom feed or RSS feed (root element <" + std::string(name) + ">)",
                         "xml");
}

}  // namespace amparo::ingest
