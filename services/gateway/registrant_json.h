// The registrant as JSON: validation of create bodies, import rows and
// patches (one code path for all three, ValidateRegistrant, so an import
// row, CSV or NDJSON, is accepted exactly when the same object POSTed would
// be), and the JSON the API, the export and the live console show.
//
// Accepted fields (docs/openapi.yaml RegistrantInput): external_ref,
// full_name, host_country, lat, lon, location_precision_m, place {name,
// country}, household_size, household {members: [{age_band, nationality}]},
// languages, contact {email, phone}, emergency_contact {name, phone, email},
// travel_document_expiry, vulnerabilities, consent {crisis_contact,
// share_aggregate_with_partners, share_with_international_orgs, recorded_at,
// notice_version}, retention_until. Anything else (an immigration status, a
// visa status...) is rejected naming the field. A JSON null is the same as
// an absent field.
//
// Thread safety: stateless functions; the Gazetteer is immutable; a
// RegistrantSource is used by one thread at a time.
#pragma once

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/clock.h"
#include "common/gazetteer.h"
#include "common/status.h"
#include "services/gateway/gateway_store.h"

namespace amparo::gateway {

// What validation needs besides the body.
struct RegistrantValidation {
  const Gazetteer* gazetteer = nullptr;  // null: `place` is refused (field "place")
  int retention_days = 730;              // default retention_until = today + this
  const Clock* clock = nullptr;          // required: today, consent.recorded_at default
  // Import: accept (and ignore) the read-only fields an export writes: id,
  // state, admin1, created_at, updated_at.
  bool allow_read_only_fields = false;
};

// Validates and normalises one registrant of `state`. kInvalidArgument with
// the field ("contact.email", "household.members", ...) and the reason.
Result<Registrant> RegistrantFromJson(const boost::json::object& body, std::string_view state,
                                      const RegistrantValidation& validation);

// The input fields of a registrant. RegistrantFieldName gives the name
// errors use, which is also the CSV column: "external_ref", "place.name",
// "household.members", "consent.crisis_contact"...
enum class RegistrantField : uint8_t {
  kExternalRef,
  kFullName,
  kHostCountry,
  kLat,
  kLon,
  kLocationPrecisionM,
  kPlaceName,
  kPlaceCountry,
  kHouseholdSize,
  kHouseholdMembers,
  kLanguages,
  kContactEmail,
  kContactPhone,
  kEmergencyContactName,
  kEmergencyContactPhone,
  kEmergencyContactEmail,
  kTravelDocumentExpiry,
  kVulnerabilities,
  kConsentCrisisContact,
  kConsentShareAggregateWithPartners,
  kConsentShareWithInternationalOrgs,
  kConsentRecordedAt,
  kConsentNoticeVersion,
  kRetentionUntil,
};
inline constexpr size_t kRegistrantFieldCount = 24;

// The objects that group fields: place {name, country}, household
// {members}, contact, emergency_contact, consent.
enum class RegistrantGroup : uint8_t { kPlace, kHousehold, kContact, kEmergencyContact, kConsent };
inline constexpr size_t kRegistrantGroupCount = 5;

std::string_view RegistrantFieldName(RegistrantField field);
// The field with that name (RegistrantFieldName's inverse), nullopt if none.
std::optional<RegistrantField> RegistrantFieldNamed(std::string_view name);
// The group a field belongs to; nullopt for a top-level field.
std::optional<RegistrantGroup> RegistrantFieldGroup(RegistrantField field);

// A household member as its source holds it; nullopt when the member lacks
// the field (or it is not a string).
struct HouseholdMemberView {
  std::optional<std::string_view> age_band;
  std::optional<std::string_view> nationality;
};

// Where ValidateRegistrant reads a registrant from: a JSON object
// (RegistrantFromJson) or a bulk import's CSV record. A source only types
// the values: each getter returns the value, nullopt when the field is
// absent, or the error for a value of the wrong shape (a JSON number where
// a string belongs, a member that is not an object, an unknown field...).
// Every rule about the values themselves is ValidateRegistrant's, so both
// sources accept exactly the same registrants. Views stay valid while the
// source lives.
class RegistrantSource {
 public:
  virtual ~RegistrantSource() = default;
  // The first field that is not a registrant field: kInvalidArgument naming it.
  virtual Status CheckUnknownFields() const = 0;
  // The same inside a group, once it is known to be present.
  virtual Status CheckUnknownFields(RegistrantGroup group) const = 0;
  // Whether the group is present; an error when it is not an object.
  virtual Result<bool> HasGroup(RegistrantGroup group) const = 0;
  virtual Result<std::optional<std::string_view>> String(RegistrantField field) const = 0;
  virtual Result<std::optional<double>> Number(RegistrantField field) const = 0;
  // A whole number; one beyond int64 may come as INT64_MAX (it is out of
  // every range ValidateRegistrant accepts anyway).
  virtual Result<std::optional<int64_t>> Integer(RegistrantField field) const = 0;
  virtual Result<std::optional<bool>> Bool(RegistrantField field) const = 0;
  // languages, vulnerabilities (strings) and household.members: the number
  // of items, then each item.
  virtual Result<std::optional<size_t>> ListSize(RegistrantField field) const = 0;
  virtual Result<std::string_view> ListString(RegistrantField field, size_t index) const = 0;
  // Household member `index`; `where` ("member 2: ") starts an error's reason.
  virtual Result<HouseholdMemberView> Member(size_t index, std::string_view where) const = 0;
};

// Validates and normalises the registrant `source` holds into `*out`: the
// one implementation of the rules, behind RegistrantFromJson and the CSV
// import. Every input field of `*out` is assigned (its strings and vectors
// keep their capacity); id, created_ms and updated_ms are left alone. On
// error (kInvalidArgument with the field and the reason) `*out` is
// partly written.
Status ValidateRegistrant(const RegistrantSource& source, std::string_view state,
                          const RegistrantValidation& validation, Registrant* out);

// The API form. `with_personal` false leaves out full_name, contact and
// emergency_contact (operators' view: data minimisation).
boost::json::object RegistrantToJson(const Registrant& r, bool with_personal);

// Applies a JSON merge patch (RFC 7396) to `current` and validates the
// result like a create. Moving the location by `place` drops the old
// coordinates (and vice versa); new household members re-derive
// household_size unless it is patched too; new consent answers get a new
// recorded_at unless one is given.
Result<Registrant> ApplyRegistrantPatch(const Registrant& current, const boost::json::object& patch,
                                        const RegistrantValidation& validation);

// Parses a JSON object body (max depth 16). kInvalidArgument (field "")
// "malformed JSON: ..." or "the body must be a JSON object".
Result<boost::json::object> ParseJsonObject(std::string_view body);

// Shape checks shared with the API's other inputs.
bool IsLanguageTag(std::string_view tag);
bool IsEmailAddress(std::string_view text);
bool IsE164Phone(std::string_view text);
inline constexpr std::string_view kAgeBands[] = {"0-4", "5-17", "18-59", "60+"};

}  // namespace amparo::gateway
