#include "services/gateway/registrant_json.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/json_text.h"
#include "services/gateway/civil_date.h"
#include "services/gateway/json_fields.h"

namespace amparo::gateway {
namespace {

namespace json = boost::json;

constexpr int kDefaultPlacePrecisionM = 10'000;  // a gazetteer city centre is city-level at best

using Field = RegistrantField;
using Group = RegistrantGroup;

struct FieldInfo {
  std::string_view name;  // dotted: the error's field and the CSV column
  std::optional<Group> group;
  std::string_view key;  // the key inside its group (or at the top level)
};

constexpr FieldInfo kFields[kRegistrantFieldCount] = {
    {"external_ref", std::nullopt, "external_ref"},
    {"full_name", std::nullopt, "full_name"},
    {"host_country", std::nullopt, "host_country"},
    {"lat", std::nullopt, "lat"},
    {"lon", std::nullopt, "lon"},
    {"location_precision_m", std::nullopt, "location_precision_m"},
    {"place.name", Group::kPlace, "name"},
    {"place.country", Group::kPlace, "country"},
    {"household_size", std::nullopt, "household_size"},
    {"household.members", Group::kHousehold, "members"},
    {"languages", std::nullopt, "languages"},
    {"contact.email", Group::kContact, "email"},
    {"contact.phone", Group::kContact, "phone"},
    {"emergency_contact.name", Group::kEmergencyContact, "name"},
    {"emergency_contact.phone", Group::kEmergencyContact, "phone"},
    {"emergency_contact.email", Group::kEmergencyContact, "email"},
    {"travel_document_expiry", std::nullopt, "travel_document_expiry"},
    {"vulnerabilities", std::nullopt, "vulnerabilities"},
    {"consent.crisis_contact", Group::kConsent, "crisis_contact"},
    {"consent.share_aggregate_with_partners", Group::kConsent, "share_aggregate_with_partners"},
    {"consent.share_with_international_orgs", Group::kConsent, "share_with_international_orgs"},
    {"consent.recorded_at", Group::kConsent, "recorded_at"},
    {"consent.notice_version", Group::kConsent, "notice_version"},
    {"retention_until", std::nullopt, "retention_until"},
};

const FieldInfo& Info(Field field) { return kFields[static_cast<size_t>(field)]; }
std::string Name(Field field) { return std::string(Info(field).name); }

constexpr std::string_view kGroupNames[] = {"place", "household", "contact", "emergency_contact", "consent"};
std::string_view GroupName(Group group) { return kGroupNames[static_cast<size_t>(group)]; }

const json::value* Find(const json::object& o, std::string_view field) {
  auto it = o.find(field);
  if (it == o.end() || it->value().is_null()) return nullptr;
  return &it->value();
}

bool HasControlCharacters(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// A registrant as a JSON object (a POST body, a merged patch, an NDJSON
// line): JSON's types and nesting; a JSON null is an absent field.
class JsonRegistrantSource final : public RegistrantSource {
 public:
  JsonRegistrantSource(const json::object& o, bool allow_read_only_fields)
      : o_(o), allow_read_only_fields_(allow_read_only_fields) {}

  Status CheckUnknownFields() const override {
    const std::initializer_list<std::string_view> read_only = {"id", "state", "admin1", "created_at",
                                                               "updated_at"};
    return RejectUnknownFields(
        o_,
        {"external_ref", "full_name", "host_country", "lat", "lon", "location_precision_m", "place",
         "household_size", "household", "languages", "contact", "emergency_contact", "travel_document_expiry",
         "vulnerabilities", "consent", "retention_until"},
        "", allow_read_only_fields_ ? read_only : std::initializer_list<std::string_view>{});
  }

  Status CheckUnknownFields(Group group) const override {
    const json::object* g = GroupObject(group);
    if (g == nullptr) return Status::Ok();
    switch (group) {
      case Group::kPlace:
        return RejectUnknownFields(*g, {"name", "country"}, "place");
      case Group::kHousehold:
        return RejectUnknownFields(*g, {"members"}, "household");
      case Group::kContact:
        return RejectUnknownFields(*g, {"email", "phone"}, "contact");
      case Group::kEmergencyContact:
        return RejectUnknownFields(*g, {"name", "phone", "email"}, "emergency_contact");
      case Group::kConsent:
        return RejectUnknownFields(*g,
                                   {"crisis_contact", "share_aggregate_with_partners",
                                    "share_with_international_orgs", "recorded_at", "notice_version"},
                                   "consent");
    }
    return Status::Ok();
  }

  Result<bool> HasGroup(Group group) const override {
    const json::value* v = Find(o_, GroupName(group));
    if (v == nullptr) return false;
    if (!v->is_object()) return InvalidArgument("must be an object", std::string(GroupName(group)));
    return true;
  }

  Result<std::optional<std::string_view>> String(Field field) const override {
    const json::value* v = Value(field);
    if (v == nullptr) return std::optional<std::string_view>();
    if (!v->is_string()) return InvalidArgument("must be a string", Name(field));
    return std::optional<std::string_view>(v->get_string());
  }

  Result<std::optional<double>> Number(Field field) const override {
    const json::value* v = Value(field);
    if (v == nullptr) return std::optional<double>();
    if (!v->is_number()) return InvalidArgument("must be a number", Name(field));
    return std::optional<double>(v->to_number<double>());
  }

  Result<std::optional<int64_t>> Integer(Field field) const override {
    const json::value* v = Value(field);
    if (v == nullptr) return std::optional<int64_t>();
    if (v->is_int64()) return std::optional<int64_t>(v->get_int64());
    if (v->is_uint64()) return std::optional<int64_t>(std::numeric_limits<int64_t>::max());
    return InvalidArgument("must be a whole number", Name(field));
  }

  Result<std::optional<bool>> Bool(Field field) const override {
    const json::value* v = Value(field);
    if (v == nullptr) return std::optional<bool>();
    if (!v->is_bool()) return InvalidArgument("must be true or false", Name(field));
    return std::optional<bool>(v->get_bool());
  }

  Result<std::optional<size_t>> ListSize(Field field) const override {
    const json::value* v = Value(field);
    if (v == nullptr) return std::optional<size_t>();
    if (!v->is_array()) {
      return InvalidArgument(
          field == Field::kHouseholdMembers ? "must be an array" : "must be an array of strings",
          Name(field));
    }
    return std::optional<size_t>(v->get_array().size());
  }

  Result<std::string_view> ListString(Field field, size_t index) const override {
    const json::value& item = Value(field)->get_array()[index];
    if (!item.is_string()) return InvalidArgument("must be an array of strings", Name(field));
    return std::string_view(item.get_string());
  }

  Result<HouseholdMemberView> Member(size_t index, std::string_view where) const override {
    const json::value& item = Value(Field::kHouseholdMembers)->get_array()[index];
    if (!item.is_object()) {
      return InvalidArgument(std::string(where) + "must be an object", "household.members");
    }
    const json::object& m = item.get_object();
    for (const auto& kv : m) {
      if (kv.key() != "age_band" && kv.key() != "nationality") {
        return InvalidArgument(std::string(where) + "unknown field " + std::string(kv.key()) +
                                   " (accepted: age_band, nationality)",
                               "household.members");
      }
    }
    auto text = [&](std::string_view key) {
      const json::value* v = Find(m, key);
      return v != nullptr && v->is_string() ? std::optional<std::string_view>(v->get_string()) : std::nullopt;
    };
    return HouseholdMemberView{text("age_band"), text("nationality")};
  }

 private:
  const json::object* GroupObject(Group group) const {
    const json::value* v = Find(o_, GroupName(group));
    return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
  }
  const json::value* Value(Field field) const {
    const FieldInfo& info = Info(field);
    const json::object* container = info.group ? GroupObject(*info.group) : &o_;
    return container == nullptr ? nullptr : Find(*container, info.key);
  }

  const json::object& o_;
  bool allow_read_only_fields_;
};

// ---- The rules (the one implementation; sources only type the values). ----

// nullopt when absent; an error when present but not a fitting string.
Result<std::optional<std::string_view>> TextField(const RegistrantSource& source, Field field,
                                                  size_t max_len) {
  auto text = source.String(field);
  if (!text.ok() || !*text) return text;
  std::string_view s = **text;
  if (s.empty()) return InvalidArgument("must not be empty (leave it out instead)", Name(field));
  if (s.size() > max_len) {
    return InvalidArgument("must be at most " + std::to_string(max_len) + " bytes", Name(field));
  }
  if (HasControlCharacters(s)) return InvalidArgument("must not contain control characters", Name(field));
  return text;
}

Result<std::string_view> RequiredText(const RegistrantSource& source, Field field, size_t max_len) {
  auto text = TextField(source, field, max_len);
  if (!text.ok()) return text.status();
  if (!*text) return InvalidArgument("is required", Name(field));
  return **text;
}

Status CheckIso3(std::string_view value, const std::string& field) {
  if (!IsIso3(value))
    return InvalidArgument("must be an ISO 3166-1 alpha-3 code in uppercase, e.g. PHL", field);
  return Status::Ok();
}

Result<std::optional<double>> NumberField(const RegistrantSource& source, Field field, double min,
                                          double max) {
  auto number = source.Number(field);
  if (!number.ok() || !*number) return number;
  const double d = **number;
  if (!std::isfinite(d) || d < min || d > max) {
    return InvalidArgument("must be within " + JsonText(json::value(min)) + ".." + JsonText(json::value(max)),
                           Name(field));
  }
  return number;
}

Result<std::optional<int64_t>> IntegerField(const RegistrantSource& source, Field field, int64_t min,
                                            int64_t max) {
  auto number = source.Integer(field);
  if (!number.ok() || !*number) return number;
  if (**number < min || **number > max) {
    return InvalidArgument("must be within " + std::to_string(min) + ".." + std::to_string(max), Name(field));
  }
  return number;
}

// Reads a list of distinct strings into `out` (cleared first).
Status StringListField(const RegistrantSource& source, Field field, size_t max_items,
                       std::vector<std::string>* out) {
  out->clear();
  auto size = source.ListSize(field);
  if (!size.ok()) return size.status();
  if (!*size) return Status::Ok();
  if (**size > max_items) {
    return InvalidArgument("must have at most " + std::to_string(max_items) + " items", Name(field));
  }
  out->reserve(**size);
  for (size_t i = 0; i < **size; ++i) {
    auto item = source.ListString(field, i);
    if (!item.ok()) return item.status();
    if (std::find(out->begin(), out->end(), *item) != out->end()) {
      return InvalidArgument("'" + std::string(*item) + "' is repeated", Name(field));
    }
    out->emplace_back(*item);
  }
  return Status::Ok();
}

Status ValidateLocation(const RegistrantSource& source, const RegistrantValidation& validation,
                        Registrant* r) {
  auto lat = NumberField(source, Field::kLat, -90, 90);
  if (!lat.ok()) return lat.status();
  auto lon = NumberField(source, Field::kLon, -180, 180);
  if (!lon.ok()) return lon.status();
  auto precision = IntegerField(source, Field::kLocationPrecisionM, 1, 1'000'000);
  if (!precision.ok()) return precision.status();
  auto place = source.HasGroup(Group::kPlace);
  if (!place.ok()) return place.status();
  if (lat->has_value() != lon->has_value()) {
    return InvalidArgument("lat and lon go together", lat->has_value() ? "lon" : "lat");
  }
  if (!lat->has_value() && !*place) {
    return InvalidArgument("is required (or give place {name, country})", "lat");
  }
  if (*place) {
    AMPARO_RETURN_IF_ERROR(source.CheckUnknownFields(Group::kPlace));
    auto name = RequiredText(source, Field::kPlaceName, 200);
    if (!name.ok()) return name.status();
    auto country = TextField(source, Field::kPlaceCountry, 3);
    if (!country.ok()) return country.status();
    const std::string_view place_country = country->value_or(r->host_country);
    AMPARO_RETURN_IF_ERROR(CheckIso3(place_country, "place.country"));
    if (place_country != r->host_country) return InvalidArgument("must be the host_country", "place.country");
    if (validation.gazetteer == nullptr) {
      return InvalidArgument("place names cannot be resolved: no gazetteer is loaded", "place");
    }
    auto resolved = validation.gazetteer->Resolve(*name, place_country);
    if (!resolved.ok()) {
      return InvalidArgument(
          "no place '" + std::string(*name) + "' in " + std::string(place_country) + " in the gazetteer",
          "place.name");
    }
    r->place_name.assign(*name);
    r->admin1 = std::move(resolved->admin1);
    // Coordinates given with a place win: the place then only names it.
    r->lat = lat->has_value() ? **lat : resolved->lat;
    r->lon = lon->has_value() ? **lon : resolved->lon;
    r->location_precision_m =
        static_cast<int>(precision->value_or(lat->has_value() ? 0 : kDefaultPlacePrecisionM));
    return Status::Ok();
  }
  r->place_name.clear();
  r->admin1.clear();
  r->lat = **lat;
  r->lon = **lon;
  r->location_precision_m = static_cast<int>(precision->value_or(0));
  return Status::Ok();
}

Status ValidateHousehold(const RegistrantSource& source, Registrant* r) {
  r->household_members.clear();
  auto household = source.HasGroup(Group::kHousehold);
  if (!household.ok()) return household.status();
  if (*household) {
    AMPARO_RETURN_IF_ERROR(source.CheckUnknownFields(Group::kHousehold));
    auto count = source.ListSize(Field::kHouseholdMembers);
    if (!count.ok()) return count.status();
    if (*count) {
      if (**count > 49) return InvalidArgument("must have at most 49 items", "household.members");
      r->household_members.reserve(**count);
      for (size_t index = 0; index < **count; ++index) {
        const std::string where = "member " + std::to_string(index) + ": ";
        auto member = source.Member(index, where);
        if (!member.ok()) return member.status();
        const auto& band = member->age_band;
        if (!band || std::find(std::begin(kAgeBands), std::end(kAgeBands), *band) == std::end(kAgeBands)) {
          return InvalidArgument(where + "age_band must be one of 0-4, 5-17, 18-59, 60+",
                                 "household.members");
        }
        if (!member->nationality || !IsIso3(*member->nationality)) {
          return InvalidArgument(where + "nationality must be an ISO 3166-1 alpha-3 code",
                                 "household.members");
        }
        r->household_members.push_back({std::string(*band), std::string(*member->nationality)});
      }
    }
  }
  auto size = IntegerField(source, Field::kHouseholdSize, 1, 50);
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

// Optional contact channels: an e-mail address, an E.164 phone number.
Result<std::optional<std::string_view>> EmailField(const RegistrantSource& source, Field field) {
  auto email = TextField(source, field, 254);
  if (email.ok() && *email && !IsEmailAddress(**email)) {
    return InvalidArgument("is not an e-mail address", Name(field));
  }
  return email;
}
Result<std::optional<std::string_view>> PhoneField(const RegistrantSource& source, Field field) {
  auto phone = TextField(source, field, 16);
  if (phone.ok() && *phone && !IsE164Phone(**phone)) {
    return InvalidArgument("must be an E.164 number, e.g. +639171234567", Name(field));
  }
  return phone;
}

Status ValidateContact(const RegistrantSource& source, Registrant* r) {
  auto contact = source.HasGroup(Group::kContact);
  if (!contact.ok()) return contact.status();
  r->contact.email.clear();
  r->contact.phone.clear();
  if (*contact) {
    AMPARO_RETURN_IF_ERROR(source.CheckUnknownFields(Group::kContact));
    auto email = EmailField(source, Field::kContactEmail);
    if (!email.ok()) return email.status();
    auto phone = PhoneField(source, Field::kContactPhone);
    if (!phone.ok()) return phone.status();
    r->contact.email.assign(email->value_or(""));
    r->contact.phone.assign(phone->value_or(""));
  }
  auto emergency = source.HasGroup(Group::kEmergencyContact);
  if (!emergency.ok()) return emergency.status();
  r->emergency_contact.name.clear();
  r->emergency_contact.phone.clear();
  r->emergency_contact.email.clear();
  if (*emergency) {
    AMPARO_RETURN_IF_ERROR(source.CheckUnknownFields(Group::kEmergencyContact));
    auto name = TextField(source, Field::kEmergencyContactName, 200);
    if (!name.ok()) return name.status();
    auto phone = PhoneField(source, Field::kEmergencyContactPhone);
    if (!phone.ok()) return phone.status();
    auto email = EmailField(source, Field::kEmergencyContactEmail);
    if (!email.ok()) return email.status();
    r->emergency_contact.name.assign(name->value_or(""));
    r->emergency_contact.phone.assign(phone->value_or(""));
    r->emergency_contact.email.assign(email->value_or(""));
  }
  return Status::Ok();
}

Status ValidateConsent(const RegistrantSource& source, const RegistrantValidation& validation,
                       Registrant* r) {
  r->consent.crisis_contact = r->consent.share_aggregate_with_partners =
      r->consent.share_with_international_orgs = false;
  r->consent.recorded_ms = 0;
  r->consent.notice_version.clear();
  auto consent = source.HasGroup(Group::kConsent);
  if (!consent.ok()) return consent.status();
  if (!*consent) return Status::Ok();
  AMPARO_RETURN_IF_ERROR(source.CheckUnknownFields(Group::kConsent));
  for (auto [field, target] :
       {std::pair{Field::kConsentCrisisContact, &r->consent.crisis_contact},
        std::pair{Field::kConsentShareAggregateWithPartners, &r->consent.share_aggregate_with_partners},
        std::pair{Field::kConsentShareWithInternationalOrgs, &r->consent.share_with_international_orgs}}) {
    auto b = source.Bool(field);
    if (!b.ok()) return b.status();
    *target = b->value_or(false);
  }
  auto recorded = TextField(source, Field::kConsentRecordedAt, 40);
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
  auto notice = TextField(source, Field::kConsentNoticeVersion, 64);
  if (!notice.ok()) return notice.status();
  r->consent.notice_version.assign(notice->value_or(""));
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

std::string_view RegistrantFieldName(RegistrantField field) { return Info(field).name; }

std::optional<RegistrantField> RegistrantFieldNamed(std::string_view name) {
  for (size_t i = 0; i < kRegistrantFieldCount; ++i) {
    if (kFields[i].name == name) return static_cast<RegistrantField>(i);
  }
  return std::nullopt;
}

std::optional<RegistrantGroup> RegistrantFieldGroup(RegistrantField field) { return Info(field).group; }

Status ValidateRegistrant(const RegistrantSource& source, std::string_view state,
                          const RegistrantValidation& validation, Registrant* out) {
  AMPARO_RETURN_IF_ERROR(source.CheckUnknownFields());
  Registrant& r = *out;
  r.state.assign(state);
  auto ref = RequiredText(source, Field::kExternalRef, 128);
  if (!ref.ok()) return ref.status();
  r.external_ref.assign(*ref);
  auto name = TextField(source, Field::kFullName, 200);
  if (!name.ok()) return name.status();
  r.full_name.assign(name->value_or(""));
  auto host = RequiredText(source, Field::kHostCountry, 64);
  if (!host.ok()) return host.status();
  AMPARO_RETURN_IF_ERROR(CheckIso3(*host, "host_country"));
  r.host_country.assign(*host);
  AMPARO_RETURN_IF_ERROR(ValidateLocation(source, validation, &r));
  AMPARO_RETURN_IF_ERROR(ValidateHousehold(source, &r));

  AMPARO_RETURN_IF_ERROR(StringListField(source, Field::kLanguages, 16, &r.languages));
  for (const auto& tag : r.languages) {
    if (!IsLanguageTag(tag))
      return InvalidArgument("'" + tag + "' is not a BCP-47 language tag", "languages");
  }
  AMPARO_RETURN_IF_ERROR(ValidateContact(source, &r));

  const int64_t today = DayOfMs(validation.clock->NowMs());
  auto expiry = TextField(source, Field::kTravelDocumentExpiry, 10);
  if (!expiry.ok()) return expiry.status();
  r.travel_document_expiry.clear();
  if (*expiry) {
    if (!ParseIsoDate(**expiry))
      return InvalidArgument("must be a date YYYY-MM-DD", "travel_document_expiry");
    r.travel_document_expiry.assign(**expiry);
  }
  AMPARO_RETURN_IF_ERROR(
      StringListField(source, Field::kVulnerabilities, std::size(kVulnerabilityNames), &r.vulnerabilities));
  for (const auto& v : r.vulnerabilities) {
    if (auto bit = VulnerabilityBit(v); !bit.ok()) return bit.status();
  }
  AMPARO_RETURN_IF_ERROR(ValidateConsent(source, validation, &r));

  auto retention = TextField(source, Field::kRetentionUntil, 10);
  if (!retention.ok()) return retention.status();
  if (*retention) {
    auto day = ParseIsoDate(**retention);
    if (!day) return InvalidArgument("must be a date YYYY-MM-DD", "retention_until");
    if (*day < today) return InvalidArgument("must not be in the past", "retention_until");
    r.retention_until.assign(**retention);
  } else {
    r.retention_until = FormatIsoDate(today + validation.retention_days);
  }
  return Status::Ok();
}

Result<Registrant> RegistrantFromJson(const json::object& o, std::string_view state,
                                      const RegistrantValidation& validation) {
  Registrant r;
  AMPARO_RETURN_IF_ERROR(
      ValidateRegistrant(JsonRegistrantSource(o, validation.allow_read_only_fields), state, validation, &r));
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
