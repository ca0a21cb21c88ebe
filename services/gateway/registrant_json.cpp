#include "services/gateway/registrant_json.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <set>

#include "common/json_text.h"
#include "services/gateway/civil_date.h"
#include "services/gateway/json_fields.h"

namespace amparo::gateway {
namespace {

namespace json = boost::json;

constexpr int kDefaultPlacePrecisionM = 10'000;  // a gazetteer city centre is city-level at best

std::string Join(std::string_view prefix, std::string_view field) {
  return prefix.empty() ? std::string(field) : std::string(prefix) + "." + std::string(field);
}

const json::value* Find(const json::object& o, std::string_view field) {
  auto it = o.find(field);
  if (it == o.end() || it->value().is_null()) return nullptr;
  return &it->value();
}

bool HasControlCharacters(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// nullopt when absent; error when present but not a fitting string.
Result<std::optional<std::string>> OptionalString(const json::object& o, std::string_view field,
                                                  std::string_view prefix, size_t max_len) {
  const json::value* v = Find(o, field);
  if (v == nullptr) return std::optional<std::string>();
  const std::string name = Join(prefix, field);
  if (!v->is_string()) return InvalidArgument("must be a string", name);
  std::string s(v->get_string());
  if (s.empty()) return InvalidArgument("must not be empty (leave it out instead)", name);
  if (s.size() > max_len)
    return InvalidArgument("must be at most " + std::to_string(max_len) + " bytes", name);
  if (HasControlCharacters(s)) return InvalidArgument("must not contain control characters", name);
  return std::optional<std::string>(std::move(s));
}

Result<std::string> RequiredString(const json::object& o, std::string_view field, size_t max_len) {
  auto s = OptionalString(o, field, "", max_len);
  if (!s.ok()) return s.status();
  if (!*s) return InvalidArgument("is required", std::string(field));
  return **s;
}

Status CheckIso3(std::string_view value, const std::string& field) {
  if (!IsIso3(value))
    return InvalidArgument("must be an ISO 3166-1 alpha-3 code in uppercase, e.g. PHL", field);
  return Status::Ok();
}

Result<std::optional<double>> OptionalNumber(const json::object& o, std::string_view field, double min,
                                             double max) {
  const json::value* v = Find(o, field);
  if (v == nullptr) return std::optional<double>();
  if (!v->is_number()) return InvalidArgument("must be a number", std::string(field));
  double d = v->to_number<double>();
  if (!std::isfinite(d) || d < min || d > max) {
    return InvalidArgument("must be within " + JsonText(json::value(min)) + ".." + JsonText(json::value(max)),
                           std::string(field));
  }
  return std::optional<double>(d);
}

Result<std::optional<int64_t>> OptionalInt(const json::object& o, std::string_view field, int64_t min,
                                           int64_t max) {
  const json::value* v = Find(o, field);
  if (v == nullptr) return std::optional<int64_t>();
  if (!(v->is_int64() || v->is_uint64()))
    return InvalidArgument("must be a whole number", std::string(field));
  if (!v->is_int64() || v->get_int64() < min || v->get_int64() > max) {
    return InvalidArgument("must be within " + std::to_string(min) + ".." + std::to_string(max),
                           std::string(field));
  }
  return std::optional<int64_t>(v->get_int64());
}

Result<std::vector<std::string>> OptionalStringArray(const json::object& o, std::string_view field,
                                                     size_t max_items) {
  std::vector<std::string> out;
  const json::value* v = Find(o, field);
  if (v == nullptr) return out;
  if (!v->is_array()) return InvalidArgument("must be an array of strings", std::string(field));
  const auto& a = v->get_array();
  if (a.size() > max_items) {
    return InvalidArgument("must have at most " + std::to_string(max_items) + " items", std::string(field));
  }
  std::set<std::string> seen;
  for (const auto& item : a) {
    if (!item.is_string()) return InvalidArgument("must be an array of strings", std::string(field));
    std::string s(item.get_string());
    if (!seen.insert(s).second) return InvalidArgument("'" + s + "' is repeated", std::string(field));
    out.push_back(std::move(s));
  }
  return out;
}

Result<const json::object*> OptionalObject(const json::object& o, std::string_view field) {
  const json::value* v = Find(o, field);
  if (v == nullptr) return static_cast<const json::object*>(nullptr);
  if (!v->is_object()) return InvalidArgument("must be an object", std::string(field));
  return &v->get_object();
}

Result<std::optional<bool>> OptionalBool(const json::object& o, std::string_view field,
                                         std::string_view prefix) {
  const json::value* v = Find(o, field);
  if (v == nullptr) return std::optional<bool>();
  if (!v->is_bool()) return InvalidArgument("must be true or false", Join(prefix, field));
  return std::optional<bool>(v->get_bool());
}

Status ParseLocation(const json::object& o, const RegistrantValidation& validation, Registrant* r) {
  auto lat = OptionalNumber(o, "lat", -90, 90);
  if (!lat.ok()) return lat.status();
  auto lon = OptionalNumber(o, "lon", -180, 180);
  if (!lon.ok()) return lon.status();
  auto precision = OptionalInt(o, "location_precision_m", 1, 1'000'000);
  if (!precision.ok()) return precision.status();
  auto place = OptionalObject(o, "place");
  if (!place.ok()) return place.status();
  if (lat->has_value() != lon->has_value()) {
    return InvalidArgument("lat and lon go together", lat->has_value() ? "lon" : "lat");
  }
  if (!lat->has_value() && *place == nullptr) {
    return InvalidArgument("is required (or give place {name, country})", "lat");
  }
  if (*place != nullptr) {
    const json::object& p = **place;
    AMPARO_RETURN_IF_ERROR(RejectUnknownFields(p, {"name", "country"}, "place"));
    auto name = OptionalString(p, "name", "place", 200);
    if (!name.ok()) return name.status();
    if (!*name) return InvalidArgument("is required", "place.name");
    auto country = OptionalString(p, "country", "place", 3);
    if (!country.ok()) return country.status();
    std::string place_country = country->value_or(r->host_country);
    AMPARO_RETURN_IF_ERROR(CheckIso3(place_country, "place.country"));
    if (place_country != r->host_country) return InvalidArgument("must be the host_country", "place.country");
    if (validation.gazetteer == nullptr) {
      return InvalidArgument("place names cannot be resolved: no gazetteer is loaded", "place");
    }
    auto resolved = validation.gazetteer->Resolve(**name, place_country);
    if (!resolved.ok()) {
      return InvalidArgument("no place '" + **name + "' in " + place_country + " in the gazetteer",
                             "place.name");
    }
    r->place_name = **name;
    r->admin1 = resolved->admin1;
    // Coordinates given with a place win: the place then only names it.
    r->lat = lat->has_value() ? **lat : resolved->lat;
    r->lon = lon->has_value() ? **lon : resolved->lon;
    r->location_precision_m =
        static_cast<int>(precision->value_or(lat->has_value() ? 0 : kDefaultPlacePrecisionM));
    return Status::Ok();
  }
  r->lat = **lat;
  r->lon = **lon;
  r->location_precision_m = static_cast<int>(precision->value_or(0));
  return Status::Ok();
}

Status ParseHousehold(const json::object& o, Registrant* r) {
  auto household = OptionalObject(o, "household");
  if (!household.ok()) return household.status();
  if (*household != nullptr) {
    AMPARO_RETURN_IF_ERROR(RejectUnknownFields(**household, {"members"}, "household"));
    const json::value* members = Find(**household, "members");
    if (members != nullptr) {
      if (!members->is_array()) return InvalidArgument("must be an array", "household.members");
      if (members->get_array().size() > 49)
        return InvalidArgument("must have at most 49 items", "household.members");
      size_t index = 0;
      for (const auto& item : members->get_array()) {
        const std::string where = "member " + std::to_string(index++) + ": ";
        if (!item.is_object()) return InvalidArgument(where + "must be an object", "household.members");
        const json::object& m = item.get_object();
        for (const auto& kv : m) {
          if (kv.key() != "age_band" && kv.key() != "nationality") {
            return InvalidArgument(
                where + "unknown field " + std::string(kv.key()) + " (accepted: age_band, nationality)",
                "household.members");
          }
        }
        const json::value* band = Find(m, "age_band");
        const json::value* nationality = Find(m, "nationality");
        if (band == nullptr || !band->is_string() ||
            std::find(std::begin(kAgeBands), std::end(kAgeBands), band->get_string()) ==
                std::end(kAgeBands)) {
          return InvalidArgument(where + "age_band must be one of 0-4, 5-17, 18-59, 60+",
                                 "household.members");
        }
        if (nationality == nullptr || !nationality->is_string() || !IsIso3(nationality->get_string())) {
          return InvalidArgument(where + "nationality must be an ISO 3166-1 alpha-3 code",
                                 "household.members");
        }
        r->household_members.push_back(
            {std::string(band->get_string()), std::string(nationality->get_string())});
      }
    }
  }
  auto size = OptionalInt(o, "household_size", 1, 50);
  if (!size.ok()) return size.status();
  const int derived = 1 + static_cast<int>(r->household_members.size());
  // Members may be listed partly, never beyond the stated size.
  if (size->has_value() && **size < derived) {
    return InvalidArgument(
        "must be at least 1 + the number of household.members (" + std::to_string(derived) + ")",
        "household_size");
  }
  r->household_size = static_cast<int>(size->value_or(derived));
  return Status::Ok();
}

Status ParseContact(const json::object& o, Registrant* r) {
  auto contact = OptionalObject(o, "contact");
  if (!contact.ok()) return contact.status();
  if (*contact != nullptr) {
    AMPARO_RETURN_IF_ERROR(RejectUnknownFields(**contact, {"email", "phone"}, "contact"));
    auto email = OptionalString(**contact, "email", "contact", 254);
    if (!email.ok()) return email.status();
    if (*email && !IsEmailAddress(**email))
      return InvalidArgument("is not an e-mail address", "contact.email");
    auto phone = OptionalString(**contact, "phone", "contact", 16);
    if (!phone.ok()) return phone.status();
    if (*phone && !IsE164Phone(**phone)) {
      return InvalidArgument("must be an E.164 number, e.g. +639171234567", "contact.phone");
    }
    r->contact = {email->value_or(""), phone->value_or("")};
  }
  auto emergency = OptionalObject(o, "emergency_contact");
  if (!emergency.ok()) return emergency.status();
  if (*emergency != nullptr) {
    AMPARO_RETURN_IF_ERROR(RejectUnknownFields(**emergency, {"name", "phone", "email"}, "emergency_contact"));
    auto name = OptionalString(**emergency, "name", "emergency_contact", 200);
    if (!name.ok()) return name.status();
    auto phone = OptionalString(**emergency, "phone", "emergency_contact", 16);
    if (!phone.ok()) return phone.status();
    if (*phone && !IsE164Phone(**phone)) {
      return InvalidArgument("must be an E.164 number, e.g. +639171234567", "emergency_contact.phone");
    }
    auto email = OptionalString(**emergency, "email", "emergency_contact", 254);
    if (!email.ok()) return email.status();
    if (*email && !IsEmailAddress(**email)) {
      return InvalidArgument("is not an e-mail address", "emergency_contact.email");
    }
    r->emergency_contact = {name->value_or(""), phone->value_or(""), email->value_or("")};
  }
  return Status::Ok();
}

Status ParseConsent(const json::object& o, const RegistrantValidation& validation, Registrant* r) {
  auto consent = OptionalObject(o, "consent");
  if (!consent.ok()) return consent.status();
  if (*consent == nullptr) return Status::Ok();
  const json::object& c = **consent;
  AMPARO_RETURN_IF_ERROR(
      RejectUnknownFields(c,
                          {"crisis_contact", "share_aggregate_with_partners", "share_with_international_orgs",
                           "recorded_at", "notice_version"},
                          "consent"));
  for (auto [field, target] :
       {std::pair{"crisis_contact", &r->consent.crisis_contact},
        std::pair{"share_aggregate_with_partners", &r->consent.share_aggregate_with_partners},
        std::pair{"share_with_international_orgs", &r->consent.share_with_international_orgs}}) {
    auto b = OptionalBool(c, field, "consent");
    if (!b.ok()) return b.status();
    *target = b->value_or(false);
  }
  auto recorded = OptionalString(c, "recorded_at", "consent", 40);
  if (!recorded.ok()) return recorded.status();
  if (*recorded) {
    auto ms = ParseRfc3339(**recorded);
    if (!ms)
      return InvalidArgument("must be an RFC 3339 time, e.g. 2024-05-01T09:30:00Z", "consent.recorded_at");
    if (*ms > validation.clock->NowMs() + 60'000)
      return InvalidArgument("is in the future", "consent.recorded_at");
    r->consent.recorded_ms = *ms;
  } else {
    r->consent.recorded_ms = validation.clock->NowMs();
  }
  auto notice = OptionalString(c, "notice_version", "consent", 64);
  if (!notice.ok()) return notice.status();
  r->consent.notice_version = notice->value_or("");
  return Status::Ok();
}

// RFC 7396.
void MergePatch(json::object& target, const json::object& patch) {
  for (const auto& kv : patch) {
    if (kv.value().is_null()) {
      target.erase(kv.key());
    } else if (kv.value().is_object()) {
      auto it = target.find(kv.key());
      if (it == target.end() || !it->value().is_object()) target[kv.key()] = json::object();
      MergePatch(target[kv.key()].as_object(), kv.value().get_object());
    } else {
      target[kv.key()] = kv.value();
    }
  }
}

}  // namespace

bool IsLanguageTag(std::string_view tag) {
  // BCP-47 shape (RFC 5646): a 2-3 or 5-8 letter primary subtag, then
  // alphanumeric subtags of 1-8. Registry-level validity is not checked.
  if (tag.empty() || tag.size() > 35) return false;
  size_t start = 0;
  bool first = true;
  while (start <= tag.size()) {
    size_t dash = tag.find('-', start);
    if (dash == std::string_view::npos) dash = tag.size();
    std::string_view sub = tag.substr(start, dash - start);
    if (sub.empty() || sub.size() > 8) return false;
    for (char c : sub) {
      bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      bool digit = c >= '0' && c <= '9';
      if (first ? !alpha : !(alpha || digit)) return false;
    }
    if (first && (sub.size() == 1 || sub.size() == 4)) return false;
    first = false;
    start = dash + 1;
  }
  return true;
}

bool IsEmailAddress(std::string_view s) {
  size_t at = s.find('@');
  if (s.size() > 254 || at == std::string_view::npos || at == 0 || at > 64 || s.find('@', at + 1) != s.npos) {
    return false;
  }
  std::string_view local = s.substr(0, at);
  std::string_view domain = s.substr(at + 1);
  for (char c : local) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '"' || c == ',' || c == ';' || c == '<' ||
        c == '>' || c == '\\') {
      return false;
    }
  }
  if (domain.size() < 3 || domain.find('.') == std::string_view::npos || domain.front() == '.' ||
      domain.back() == '.' || domain.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(domain.begin(), domain.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

bool IsE164Phone(std::string_view s) {
  // "+", a country code not starting with 0, at most 15 digits in all.
  if (s.size() < 8 || s.size() > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
  return std::all_of(s.begin() + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Result<json::object> ParseJsonObject(std::string_view body) {
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 16;
  json::value v = json::parse(body, ec, {}, options);
  if (ec) return InvalidArgument("malformed JSON: " + ec.message(), "");
  if (!v.is_object()) return InvalidArgument("the body must be a JSON object", "");
  return std::move(v.as_object());
}

Result<Registrant> RegistrantFromJson(const json::object& o, std::string_view state,
                                      const RegistrantValidation& validation) {
  const std::initializer_list<std::string_view> read_only = {"id", "state", "admin1", "created_at",
                                                             "updated_at"};
  AMPARO_RETURN_IF_ERROR(RejectUnknownFields(
      o,
      {"external_ref", "full_name", "host_country", "lat", "lon", "location_precision_m", "place",
       "household_size", "household", "languages", "contact", "emergency_contact", "travel_document_expiry",
       "vulnerabilities", "consent", "retention_until"},
      "", validation.allow_read_only_fields ? read_only : std::initializer_list<std::string_view>{}));
  Registrant r;
  r.state = std::string(state);
  auto ref = RequiredString(o, "external_ref", 128);
  if (!ref.ok()) return ref.status();
  r.external_ref = *ref;
  auto name = OptionalString(o, "full_name", "", 200);
  if (!name.ok()) return name.status();
  r.full_name = name->value_or("");
  auto host = RequiredString(o, "host_country", 64);
  if (!host.ok()) return host.status();
  AMPARO_RETURN_IF_ERROR(CheckIso3(*host, "host_country"));
  r.host_country = *host;
  AMPARO_RETURN_IF_ERROR(ParseLocation(o, validation, &r));
  AMPARO_RETURN_IF_ERROR(ParseHousehold(o, &r));

  auto languages = OptionalStringArray(o, "languages", 16);
  if (!languages.ok()) return languages.status();
  for (const auto& tag : *languages) {
    if (!IsLanguageTag(tag))
      return InvalidArgument("'" + tag + "' is not a BCP-47 language tag", "languages");
  }
  r.languages = *languages;
  AMPARO_RETURN_IF_ERROR(ParseContact(o, &r));

  const int64_t today = DayOfMs(validation.clock->NowMs());
  auto expiry = OptionalString(o, "travel_document_expiry", "", 10);
  if (!expiry.ok()) return expiry.status();
  if (*expiry) {
    if (!ParseIsoDate(**expiry))
      return InvalidArgument("must be a date YYYY-MM-DD", "travel_document_expiry");
    r.travel_document_expiry = **expiry;
  }
  auto vulnerabilities = OptionalStringArray(o, "vulnerabilities", std::size(kVulnerabilityNames));
  if (!vulnerabilities.ok()) return vulnerabilities.status();
  for (const auto& v : *vulnerabilities) {
    if (auto bit = VulnerabilityBit(v); !bit.ok()) return bit.status();
  }
  r.vulnerabilities = *vulnerabilities;
  AMPARO_RETURN_IF_ERROR(ParseConsent(o, validation, &r));

  auto retention = OptionalString(o, "retention_until", "", 10);
  if (!retention.ok()) return retention.status();
  if (*retention) {
    auto day = ParseIsoDate(**retention);
    if (!day) return InvalidArgument("must be a date YYYY-MM-DD", "retention_until");
    if (*day < today) return InvalidArgument("must not be in the past", "retention_until");
    r.retention_until = **retention;
  } else {
    r.retention_until = FormatIsoDate(today + validation.retention_days);
  }
  return r;
}

json::object RegistrantToJson(const Registrant& r, bool with_personal) {
  json::object o;
  o["id"] = r.id;
  o["state"] = r.state;
  o["external_ref"] = r.external_ref;
  if (with_personal && !r.full_name.empty()) o["full_name"] = r.full_name;
  o["host_country"] = r.host_country;
  o["lat"] = r.lat;
  o["lon"] = r.lon;
  if (r.location_precision_m > 0) o["location_precision_m"] = r.location_precision_m;
  if (!r.place_name.empty()) o["place"] = json::object{{"name", r.place_name}, {"country", r.host_country}};
  o["admin1"] = r.admin1;
  o["household_size"] = r.household_size;
  json::array members;
  for (const auto& m : r.household_members) {
    members.push_back(json::object{{"age_band", m.age_band}, {"nationality", m.nationality}});
  }
  o["household"] = json::object{{"members", std::move(members)}};
  json::array languages;
  for (const auto& l : r.languages) languages.emplace_back(l);
  o["languages"] = std::move(languages);
  if (with_personal) {
    json::object contact;
    if (!r.contact.email.empty()) contact["email"] = r.contact.email;
    if (!r.contact.phone.empty()) contact["phone"] = r.contact.phone;
    o["contact"] = std::move(contact);
    json::object emergency;
    if (!r.emergency_contact.name.empty()) emergency["name"] = r.emergency_contact.name;
    if (!r.emergency_contact.phone.empty()) emergency["phone"] = r.emergency_contact.phone;
    if (!r.emergency_contact.email.empty()) emergency["email"] = r.emergency_contact.email;
    o["emergency_contact"] = std::move(emergency);
  }
  if (!r.travel_document_expiry.empty()) o["travel_document_expiry"] = r.travel_document_expiry;
  json::array vulnerabilities;
  for (const auto& v : r.vulnerabilities) vulnerabilities.emplace_back(v);
  o["vulnerabilities"] = std::move(vulnerabilities);
  if (r.consent.recorded_ms > 0) {
    json::object consent;
    consent["crisis_contact"] = r.consent.crisis_contact;
    consent["share_aggregate_with_partners"] = r.consent.share_aggregate_with_partners;
    consent["share_with_international_orgs"] = r.consent.share_with_international_orgs;
    consent["recorded_at"] = FormatRfc3339(r.consent.recorded_ms);
    consent["notice_version"] =
        r.consent.notice_version.empty() ? json::value(nullptr) : json::value(r.consent.notice_version);
    o["consent"] = std::move(consent);
  } else {
    o["consent"] = nullptr;  // never recorded: no consent to anything
  }
  o["created_at"] = FormatRfc3339(r.created_ms);
  o["updated_at"] = FormatRfc3339(r.updated_ms);
  o["retention_until"] = r.retention_until;
  return o;
}

Result<Registrant> ApplyRegistrantPatch(const Registrant& current, const json::object& patch,
                                        const RegistrantValidation& validation) {
  json::object base = RegistrantToJson(current, /*with_personal=*/true);
  for (const char* read_only : {"id", "state", "admin1", "created_at", "updated_at"}) base.erase(read_only);
  if (base.at("consent").is_null()) base.erase("consent");  // never recorded: stays so unless patched
  const bool moves_by_place = Find(patch, "place") != nullptr;
  const bool moves_by_coordinates = patch.contains("lat") || patch.contains("lon");
  if (moves_by_place && !moves_by_coordinates) {
    base.erase("lat");
    base.erase("lon");
    if (!patch.contains("location_precision_m")) base.erase("location_precision_m");
  }
  if (moves_by_coordinates && !patch.contains("place")) {
    base.erase("place");
    if (!patch.contains("location_precision_m")) base.erase("location_precision_m");
  }
  if (patch.contains("household") && !patch.contains("household_size")) base.erase("household_size");
  if (const json::value* consent = Find(patch, "consent"); consent != nullptr && consent->is_object() &&
                                                           !consent->get_object().contains("recorded_at") &&
                                                           base.contains("consent")) {
    base["consent"].as_object().erase("recorded_at");
  }
  MergePatch(base, patch);
  RegistrantValidation v = validation;
  v.allow_read_only_fields = false;
  // retention_until stays as recorded unless patched; a record due for
  // purge today is not refused for it.
  auto r = RegistrantFromJson(base, current.state, v);
  return r;
}

}  // namespace amparo::gateway
