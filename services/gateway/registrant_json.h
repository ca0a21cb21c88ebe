// The registrant as JSON: validation of create bodies, import rows and
// patches (one code path for all three, so an import row is accepted exactly
// when the same object POSTed would be), and the JSON the API, the export and
// the live console show.
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
// Thread safety: stateless functions; the Gazetteer is immutable.
#pragma once

#include <boost/json/object.hpp>

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
