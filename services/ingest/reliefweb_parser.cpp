#include "services/ingest/reliefweb_parser.h"

#include <boost/json.hpp>

#include <cctype>
#include <charconv>
#include <chrono>
#include <optional>

namespace amparo::ingest {
namespace {

namespace json = boost::json;


std::optional<int> Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// RFC 3339 date-time as ReliefWeb writes it ("2015-12-08T22:02:56+00:00"),
// fractional seconds and "Z" accepted; -> unix ms.
std::optional<int64_t> ParseRfc3339(std::string_view s) {
  auto y = Digits(s, 0, 4), mo = Digits(s, 5, 2), d = Digits(s, 8, 2);
  auto h = Digits(s, 11, 2), mi = Digits(s, 14, 2), sec = Digits(s, 17, 2);
  if (!y || !mo || !d || !h || !mi || !sec || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':' || *h > 23 || *mi > 59 || *sec > 60) {
    return std::nullopt;
  }
  using namespace std::chrono;
  year_month_day ymd{year{*y}, month{static_cast<unsigned>(*mo)}, day{static_cast<unsigned>(*d)}};
  if (!ymd.ok()) return std::nullopt;
  size_t pos = 19;
  int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    size_t start = ++pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
    if (pos == start) return std::nullopt;
    std::string frac(s.substr(start, std::min<size_t>(pos - start, 3)));
    while (frac.size() < 3) frac += '0';
    millis = std::stoi(frac);
  }
  int64_t offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) {
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
    auto oh = Digits(s, pos + 1, 2), om = Digits(s, pos + 4, 2);
    if (!oh || !om || *oh > 23 || *om > 59) return std::nullopt;
    offset_min = (*oh * 60 + *om) * (s[pos] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  int64_t ms = duration_cast<milliseconds>(sys_days{ymd}.time_since_epoch()).count();
  ms += ((*h * 60 + *mi - offset_min) * 60 + *sec) * int64_t{1000} + millis;
  return ms;
}

struct Problem {
  std::string field;
  std::string reason;
};

const json::value* Member(const json::object& o, std::string_view key) { return o.if_contains(key); }

std::optional<std::string> StringMember(const json::object& o, std::string_view key) {
  const json::value* v = Member(o, key);
  if (v && v->is_string()) return std::string(v->get_string());
  return std::nullopt;
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool LooksLikeIso3(std::string_view s) {
  return s.size() == 3 && std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

struct CountryArea {
  std::string iso3;
  std::string name;
};

class RecordReader {
 public:
  RecordReader(int index, const ReliefWebParseOptions& options)
      : prefix_("data[" + std::to_string(index) + "]"), options_(options) {}

  std::optional<Problem> Read(const json::value& value, v1::CrisisEvent* event, std::string* id) {
    if (!value.is_object()) return Fail("", "must be an object");
    const json::object& record = value.get_object();
    const json::value* fields_value = Member(record, "fields");
    if (!fields_value || !fields_value->is_object()) return Fail(".fields", "must be an object");
    const json::object& fields = fields_value->get_object();

    // The record's "id" is a string; fields.id the same number.
    if (auto s = StringMember(record, "id"); s && !s->empty()) {
      *id = *s;
    } else if (const json::value* n = Member(fields, "id"); n && (n->is_int64() || n->is_uint64())) {
      *id = n->is_int64() ? std::to_string(n->get_int64()) : std::to_string(n->get_uint64());
    } else {
      return Fail(".id", "must be a non-empty string (or fields.id a number)");
    }
    if (id->find_first_of(": \t\r\n") != std::string::npos || id->size() > 64) {
      return Fail(".id", "must be at most 64 characters without spaces or colons, got " + Quote(*id));
    }

    std::optional<std::string> name = StringMember(fields, "name");
    if (!name || name->empty()) return Fail(".fields.name", "must be a non-empty string");
    std::optional<std::string> status = StringMember(fields, "status");
    if (!status) return Fail(".fields.status", "must be a string");
    v1::Urgency urgency;
    v1::MessageType msg_type = v1::MESSAGE_TYPE_ALERT;
    int64_t status_rank;
    if (*status == "alert") {
      urgency = v1::URGENCY_EXPECTED, status_rank = 1;
    } else if (*status == "ongoing" || *status == "current") {
      urgency = v1::URGENCY_IMMEDIATE, status_rank = 2;
    } else if (*status == "past") {
      urgency = v1::URGENCY_PAST, status_rank = 3;
    } else if (*status == "external") {
      urgency = v1::URGENCY_UNKNOWN, status_rank = 1;
    } else if (*status == "alert-archive") {
      urgency = v1::URGENCY_PAST, status_rank = 3, msg_type = v1::MESSAGE_TYPE_CANCEL;
    } else {
      return Fail(".fields.status",
                  "must be alert, ongoing, current, past, external or alert-archive, got " + Quote(*status));
    }
    std::optional<std::string> glide = StringMember(fields, "glide");

    // Hazard code: primary_type, the primary entry of type[], the GLIDE prefix.
    std::string code;
    if (const json::value* pt = Member(fields, "primary_type"); pt && pt->is_object()) {
      code = StringMember(pt->get_object(), "code").value_or("");
    }
    if (code.empty()) {
      if (const json::value* types = Member(fields, "type"); types && types->is_array()) {
        for (const json::value& t : types->get_array()) {
          if (!t.is_object()) continue;
          const json::value* primary = Member(t.get_object(), "primary");
          if (code.empty() || (primary && primary->is_bool() && primary->get_bool())) {
            code = StringMember(t.get_object(), "code").value_or(code);
          }
        }
      }
    }
    if (code.empty() && glide && glide->size() >= 2) code = glide->substr(0, 2);

    // Countries: country[] (primary first), else primary_country, else the
    // GLIDE suffix.
    std::vector<CountryArea> countries;
    std::string primary_name;
    if (const json::value* pc = Member(fields, "primary_country"); pc && pc->is_object()) {
      const auto& o = pc->get_object();
      std::string iso3 = Upper(StringMember(o, "iso3").value_or(""));
      primary_name = StringMember(o, "shortname").value_or(StringMember(o, "name").value_or(""));
      if (!LooksLikeIso3(iso3)) {
        return Fail(".fields.primary_country.iso3", "must be a 3-letter ISO 3166-1 alpha-3 code, got " + Quote(iso3));
      }
      countries.push_back({iso3, primary_name});
    }
    if (const json::value* list = Member(fields, "country"); list && list->is_array()) {
      const json::array& arr = list->get_array();
      for (size_t i = 0; i < arr.size(); ++i) {
        if (!arr[i].is_object()) return Fail(".fields.country[" + std::to_string(i) + "]", "must be an object");
        const auto& o = arr[i].get_object();
        std::string iso3 = Upper(StringMember(o, "iso3").value_or(""));
        if (!LooksLikeIso3(iso3)) {
          return Fail(".fields.country[" + std::to_string(i) + "].iso3",
                      "must be a 3-letter ISO 3166-1 alpha-3 code, got " + Quote(iso3));
        }
        bool seen = std::any_of(countries.begin(), countries.end(), [&](const auto& c) { return c.iso3 == iso3; });
        if (!seen) countries.push_back({iso3, StringMember(o, "shortname").value_or(StringMember(o, "name").value_or(""))});
      }
    }
    if (countries.empty() && glide && glide->size() > 4) {
      std::string suffix = glide->substr(glide->size() - 3);
      if (LooksLikeIso3(suffix) && (*glide)[glide->size() - 4] == '-') {
        // Short records carry the country only in the name, "Chad: Floods - Aug 2024".
        size_t colon = name->find(':');
        primary_name = colon == std::string::npos ? std::string() : name->substr(0, colon);
        countries.push_back({suffix, primary_name});
      }
    }
    if (countries.empty()) {
      return Fail(".fields.country",
                  "no country: country, primary_country and a GLIDE country suffix are all missing" +
                      (glide ? " (glide " + *glide + ")" : std::string()));
    }

    std::optional<int64_t> created, changed, event_time;
    if (const json::value* date = Member(fields, "date"); date) {
      if (!date->is_object()) return Fail(".fields.date", "must be an object");
      for (auto [key, out] : {std::pair{"created", &created}, {"changed", &changed}, {"event", &event_time}}) {
        const json::value* v = Member(date->get_object(), key);
        if (!v || v->is_null()) continue;
        std::optional<int64_t> ms = v->is_string() ? ParseRfc3339(v->get_string()) : std::nullopt;
        if (!ms) return Fail(std::string(".fields.date.") + key, "must be an RFC 3339 date-time");
        *out = ms;
      }
    }

    event->set_event_id(std::string(kReliefWebSource) + ":" + *id);
    event->set_source(std::string(kReliefWebSource));
    event->set_source_id(*id);
    if (glide && !glide->empty()) event->add_id_aliases("glide:" + *glide);
    event->set_revision(changed ? *changed : created ? *created : status_rank);
    event->set_status(options_.status);
    event->set_msg_type(msg_type);
    if (msg_type == v1::MESSAGE_TYPE_CANCEL) {
      v1::EventReference* ref = event->add_references();
      ref->set_source(std::string(kReliefWebSource));
      ref->set_source_id(*id);
    }
    event->set_hazard(ReliefWebHazard(code));
    event->set_source_hazard_code(code);
    event->set_urgency(urgency);
    for (const CountryArea& c : countries) {
      v1::Area* area = event->add_areas();
      area->set_description(c.name.empty() ? c.iso3 : c.name);
      v1::Geocode* geocode = area->add_geocodes();
      geocode->set_name("ISO3");
      geocode->set_value(c.iso3);
    }
    event->set_place(countries.front().name);
    v1::LocalizedText* text = event->add_texts();
    text->set_language("en");
    text->set_headline(*name);
    if (auto description = StringMember(fields, "description")) text->set_description(*description);
    if (event_time || created) event->set_onset_ms(event_time ? *event_time : *created);
    if (changed || created) event->set_sent_ms(changed ? *changed : *created);
    if (options_.received_ms != 0) event->set_received_ms(options_.received_ms);
    if (auto url = StringMember(fields, "url_alias")) {
      event->set_web_url(*url);
    } else if (auto plain = StringMember(fields, "url")) {
      event->set_web_url(*plain);
    }
    return std::nullopt;
  }

 private:
  Problem Fail(std::string_view field, std::string reason) const {
    return {prefix_ + std::string(field), std::move(reason)};
  }

  std::string prefix_;
  const ReliefWebParseOptions& options_;
};

}  // namespace

std::string RecordRejection::ToString() const {
  std::string out = field + ": " + reason;
  if (!id.empty()) out += " (id " + id + ")";
  return out;
}

v1::HazardKind ReliefWebHazard(std::string_view code) {
  if (code == "EQ") return v1::HAZARD_KIND_EARTHQUAKE;
  if (code == "TS") return v1::HAZARD_KIND_TSUNAMI;
  if (code == "TC") return v1::HAZARD_KIND_TROPICAL_CYCLONE;
  if (code == "FL" || code == "FF" || code == "SS") return v1::HAZARD_KIND_FLOOD;
  if (code == "VO") return v1::HAZARD_KIND_VOLCANO;
  if (code == "WF") return v1::HAZARD_KIND_WILDFIRE;
  if (code == "DR") return v1::HAZARD_KIND_DROUGHT;
  if (code == "ST" || code == "EC" || code == "VW" || code == "CW" || code == "HT" || code == "TO") {
    return v1::HAZARD_KIND_SEVERE_WEATHER;
  }
  if (code == "CE") return v1::HAZARD_KIND_CONFLICT;
  return v1::HAZARD_KIND_OTHER;
}

Result<ParsedReliefWeb> ParseReliefWebJson(std::string_view text, const ReliefWebParseOptions& options) {
  json::stream_parser parser;
  boost::system::error_code ec;
  size_t consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec && consumed < text.size()) {
    return InvalidArgument("JSON syntax error at " + TextPosition(text, consumed) + ": unexpected data after the document");
  }
  if (ec) return InvalidArgument("JSON syntax error at " + TextPosition(text, consumed) + ": " + ec.message());
  parser.finish(ec);
  if (ec) return InvalidArgument("JSON syntax error at " + TextPosition(text, text.size()) + ": " + ec.message());
  json::value root = parser.release();
  if (!root.is_object()) return InvalidArgument("must be a ReliefWeb API response object");
  const json::object& object = root.get_object();
  const json::value* data = object.if_contains("data");
  if (!data || !data->is_array()) return InvalidArgument("must be an array of disaster records", "data");

  ParsedReliefWeb parsed;
  if (const json::value* total = object.if_contains("totalCount"); total && total->is_int64()) {
    parsed.total_count = total->get_int64();
  }
  const json::array& records = data->get_array();
  parsed.record_count = static_cast<int>(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    v1::CrisisEvent event;
    std::string id;
    RecordReader reader(static_cast<int>(i), options);
    if (std::optional<Problem> problem = reader.Read(records[i], &event, &id)) {
      parsed.rejections.push_back(
          {.index = static_cast<int>(i), .id = id, .field = problem->field, .reason = problem->reason});
    } else {
      parsed.events.push_back(std::move(event));
    }
  }
  return parsed;
}

Result<ParsedFeed> ParseReliefWebFeed(std::string_view bytes, const FeedContext& context) {
  ReliefWebParseOptions options;
  options.status = ApplyExercise(v1::EVENT_STATUS_ACTUAL, context);
  options.received_ms = context.received_ms;
  Result<ParsedReliefWeb> parsed = ParseReliefWebJson(bytes, options);
  if (!parsed.ok()) return parsed.status();
  ParsedFeed feed;
  feed.format = "reliefweb";
  feed.feature_count = parsed->record_count;
  feed.events = std::move(parsed->events);
  for (RecordRejection& r : parsed->rejections) {
    feed.rejections.push_back(
        {.index = r.index, .id = std::move(r.id), .field = std::move(r.field), .reason = std::move(r.reason)});
  }
  return feed;
}

}  // namespace amparo::ingest
