#include "services/ingest/check.h"

#include <boost/json.hpp>

#include <filesystem>

#include "common/clock.h"
#include "common/json_text.h"
#include "services/ingest/feed_detect.h"
#include "services/ingest/spool.h"

namespace amparo::ingest {
namespace {

namespace json = boost::json;

// The spool's default bound (SpoolOptions): check refuses what ingest refuses.
const int64_t kMaxFileBytes = SpoolOptions{}.max_file_bytes;

const char* StatusName(v1::EventStatus s) {
  switch (s) {
    case v1::EVENT_STATUS_ACTUAL: return "Actual";
    case v1::EVENT_STATUS_EXERCISE: return "Exercise";
    case v1::EVENT_STATUS_SYSTEM: return "System";
    case v1::EVENT_STATUS_TEST: return "Test";
    case v1::EVENT_STATUS_DRAFT: return "Draft";
    default: return "";
  }
}

const char* MsgTypeName(v1::MessageType m) {
  switch (m) {
    case v1::MESSAGE_TYPE_ALERT: return "Alert";
    case v1::MESSAGE_TYPE_UPDATE: return "Update";
    case v1::MESSAGE_TYPE_CANCEL: return "Cancel";
    case v1::MESSAGE_TYPE_ACK: return "Ack";
    case v1::MESSAGE_TYPE_ERROR: return "Error";
    default: return "";
  }
}

// "HAZARD_KIND_TROPICAL_CYCLONE" -> "tropical_cyclone".
template <typename Enum>
std::string EnumName(const std::string& full, std::string_view prefix) {
  std::string name = full.rfind(prefix, 0) == 0 ? full.substr(prefix.size()) : full;
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

json::value Time(int64_t ms) { return ms == 0 ? json::value(nullptr) : json::value(FormatRfc3339(ms)); }

json::object EventJson(const std::string& file, const std::string& format, const v1::CrisisEvent& e) {
  json::object o;
  o["file"] = file;
  o["format"] = format;
  o["source"] = e.source();
  o["event_id"] = e.event_id();
  o["source_id"] = e.source_id();
  json::array aliases;
  for (const auto& a : e.id_aliases()) aliases.emplace_back(a);
  o["aliases"] = std::move(aliases);
  o["revision"] = e.revision();
  o["status"] = StatusName(e.status());
  o["msgType"] = MsgTypeName(e.msg_type());
  json::array refs;
  for (const auto& r : e.references()) refs.emplace_back(r.source() + ":" + r.source_id());
  o["references"] = std::move(refs);
  o["hazard"] = EnumName<v1::HazardKind>(v1::HazardKind_Name(e.hazard()), "HAZARD_KIND_");
  o["source_hazard"] = e.source_hazard_code();
  o["severity"] = EnumName<v1::Severity>(v1::Severity_Name(e.severity()), "SEVERITY_");
  o["urgency"] = EnumName<v1::Urgency>(v1::Urgency_Name(e.urgency()), "URGENCY_");
  o["certainty"] = EnumName<v1::Certainty>(v1::Certainty_Name(e.certainty()), "CERTAINTY_");
  if (e.metrics().has_gdacs_alert()) o["gdacs_alert"] = e.metrics().gdacs_alert();
  if (e.metrics().has_pager_alert()) o["pager_alert"] = e.metrics().pager_alert();
  if (e.metrics().has_magnitude()) o["magnitude"] = e.metrics().magnitude();
  if (!e.scope().empty()) o["scope"] = e.scope();
  if (e.has_origin()) o["origin"] = {{"lat", e.origin().lat()}, {"lon", e.origin().lon()}};
  json::array areas;
  for (const auto& a : e.areas()) {
    json::array codes;
    for (const auto& g : a.geocodes()) codes.emplace_back(g.name() + "=" + g.value());
    areas.emplace_back(json::object{{"description", a.description()},
                                    {"polygons", a.polygons_size()},
                                    {"circles", a.circles_size()},
                                    {"geocodes", std::move(codes)}});
  }
  o["areas"] = std::move(areas);
  o["onset"] = Time(e.onset_ms());
  o["expires"] = Time(e.expires_ms());
  o["sent"] = Time(e.sent_ms());
  json::array languages;
  for (const auto& t : e.texts()) languages.emplace_back(t.language());
  o["languages"] = std::move(languages);
  o["headline"] = e.texts().empty() ? "" : e.texts(0).headline();
  return o;
}

}  // namespace

int RunCheck(const std::vector<std::string>& files, bool lenient, std::ostream& out, std::ostream& err) {
  int exit_code = 0;
  for (const std::string& file : files) {
    FeedContext context;
    context.validation = lenient ? ValidationMode::kLenient : ValidationMode::kStrict;
    context.exercise = IsExerciseFileName(std::filesystem::path(file).filename().string());
    auto parsed = ParseFeedFile(file, kMaxFileBytes, context);
    if (auto reason = FeedRejection(parsed)) {
      exit_code = 1;
      out << JsonText(json::object{{"file", file}, {"rejected", true}, {"reason", *reason}}) << '\n';
    } else {
      for (const auto& event : parsed->events) out << JsonText(EventJson(file, parsed->format, event)) << '\n';
      if (parsed->events.empty())
        out << JsonText(json::object{{"file", file}, {"format", parsed->format}, {"events", 0}}) << '\n';
      for (const auto& rejection : parsed->rejections) err << file << ": entry rejected: " << rejection.ToString() << '\n';
    }
    if (parsed.ok()) {
      for (const auto& warning : parsed->warnings) err << file << ": warning " << warning.ToString() << '\n';
    }
  }
  return exit_code;
}

}  // namespace amparo::ingest
