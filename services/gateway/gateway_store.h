// The gateway's database: API tokens, the registry of nationals abroad (the
// gateway owns it), missions' webhook subscriptions, and the alerts and
// delivery outcomes that amparo-notify reports back.
//
// Every function that reads or changes a state's data takes that state and
// scopes its SQL by it: another state's row is reported as NotFound, exactly
// as if it did not exist (DESIGN.md guarantee 4).
//
// Writes that other daemons must learn about (registry changes for
// amparo-rules, subscriptions for amparo-notify) enqueue their Envelope in
// link_outbox inside the same transaction as the write (guarantee 1).
//
// Inputs are trusted here: the HTTP layer (gateway_api.h) validates them.
//
// Thread safety: functions are stateless; a Db belongs to one thread.
// Errors: kInvalidArgument (with field) for bad arguments that are checked
// here, kNotFound, kAlreadyExists, kUnauthenticated, and whatever the
// database returns (kUnavailable when busy, kInternal otherwise).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/db.h"
#include "common/status.h"

namespace amparo::v1 {
class ConsularAlert;
class DeliveryStatus;
}  // namespace amparo::v1

namespace amparo::gateway {

// Creates or upgrades every gateway table (and the link tables, so the HTTP
// thread can enqueue before the link senders exist). Idempotent.
Status MigrateGatewayDb(Db& db);

// ---------------------------------------------------------------- tokens

// registrar: writes and reads the registry. operator: reads the registry,
// alerts, incidents, the live feed; manages subscriptions. admin: all.
enum class Role { kRegistrar, kOperator, kAdmin };

// "registrar" | "operator" | "admin"; anything else is kInvalidArgument
// with field "role".
Result<Role> ParseRole(std::string_view text);
std::string_view RoleName(Role role);

// An authenticated caller. `state` is the ISO3 code every request of this
// token is scoped to.
struct Token {
  std::string id;
  std::string state;
  Role role;
};

// True for exactly three ASCII uppercase letters (ISO 3166-1 alpha-3 shape).
bool IsIso3(std::string_view text);

// Creates a token for `state_iso3` and returns its plaintext, "amp_" +
// base64url(32 random bytes). Only its SHA-256 is stored: the plaintext is
// shown once. kInvalidArgument (field "state") unless the state is three
// uppercase letters.
Result<std::string> CreateToken(Db& db, std::string_view state_iso3, Role role, const Clock& clock);

// Looks up the token whose plaintext is `bearer` (without the "Bearer "
// scheme). kUnauthenticated when it is unknown, malformed or revoked.
Result<Token> Authenticate(Db& db, std::string_view bearer);

// Revokes token `token_id`; later Authenticate() calls fail. kNotFound when
// there is no such (unrevoked) token.
Status RevokeToken(Db& db, std::string_view token_id, const Clock& clock);

// -------------------------------------------------------------- registry

// The names accepted in Registrant::vulnerabilities, in registry.proto bit
// order (bit 1 << i for kVulnerabilityNames[i]).
inline constexpr std::string_view kVulnerabilityNames[] = {
    "unaccompanied_child", "child",        "older_person", "disability",
    "pregnancy",           "medical_need", "in_detention", "isolated_domestic_worker",
    "trafficking_victim"};

// The VulnerabilityFlag bit for `name`, or kInvalidArgument (field
// "vulnerabilities") for an unknown name.
Result<uint32_t> VulnerabilityBit(std::string_view name);

// One registered national abroad. Deliberately no immigration status, and
// (in this version) no names or contact details.
struct Registrant {
  std::string id;            // 32 hex, assigned by InsertRegistrant
  std::string state;         // ISO3 of the registering state
  std::string external_ref;  // the state's own reference, unique per state
  std::string host_country;  // ISO3
  double lat = 0;
  double lon = 0;
  int household_size = 1;                    // 1..50
  std::vector<std::string> languages;        // BCP-47 tags
  std::vector<std::string> vulnerabilities;  // names from kVulnerabilityNames
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

// Stores `registrant` (its id and times are assigned here and returned),
// bumps the registry sequence and enqueues a RegistryChange UPSERT for peer
// "rules", all in one transaction. kAlreadyExists (field "external_ref")
// when the state already has that external_ref.
Result<Registrant> InsertRegistrant(Db& db, Registrant registrant, const Clock& clock);

Result<Registrant> GetRegistrant(Db& db, std::string_view state, std::string_view id);

struct RegistrantPage {
  std::vector<Registrant> items;
  std::optional<std::string> next_cursor;  // pass back to get the next page
};

// Keyset pagination in id order. `host_country` "" means every host
// country; `cursor` "" starts at the beginning; `limit` must be 1..1000.
Result<RegistrantPage> ListRegistrants(Db& db, std::string_view state, std::string_view host_country,
                                       std::string_view cursor, int limit);

// Deletes the registrant and enqueues a RegistryChange DELETE for "rules"
// in the same transaction. kNotFound when the state has no such registrant.
Status DeleteRegistrant(Db& db, std::string_view state, std::string_view id, const Clock& clock);

// Registrants of every state (the /metrics gauge).
Result<int64_t> CountRegistrants(Db& db);

// The current registry sequence (0 before the first change).
Result<int64_t> RegistrySequence(Db& db);

// --------------------------------------------------------- subscriptions

struct SubscriptionRecord {
  std::string id;  // 32 hex, assigned by CreateSubscription
  std::string state;
  std::string url;
  std::string secret;  // "whsec_" + base64(24 random bytes), assigned by CreateSubscription
  std::vector<std::string> host_countries;  // empty: every host country
  std::string description;
  int64_t created_ms = 0;
};

// Stores the subscription with a fresh id and secret and enqueues a
// Subscription message for peer "notify" in the same transaction.
Result<SubscriptionRecord> CreateSubscription(Db& db, SubscriptionRecord subscription, const Clock& clock);
// The state's live (not deleted) subscriptions, oldest first.
Result<std::vector<SubscriptionRecord>> ListSubscriptions(Db& db, std::string_view state);
Result<SubscriptionRecord> GetSubscription(Db& db, std::string_view state, std::string_view id);
// Marks it deleted and enqueues a Subscription message with deleted=true
// for "notify". kNotFound when the state has no such live subscription.
Status DeleteSubscription(Db& db, std::string_view state, std::string_view id, const Clock& clock);

// ---------------------------------------------------- alerts, deliveries

// Stores `alert` (as AlertToJson) unless a revision at least as new is
// already stored. Returns true when it was stored. kInvalidArgument for an
// alert without alert_id or with a malformed state. Call inside the
// caller's transaction.
Result<bool> UpsertAlert(Db& db, const v1::ConsularAlert& alert, const Clock& clock);

// Stores the delivery outcome unless a newer one (by updated_ms, then
// attempts) is stored. The state comes from the alert id
// "<incident>/<STATE>/<HOST>". kInvalidArgument for a malformed message.
Status UpsertDelivery(Db& db, const v1::DeliveryStatus& delivery);

struct DeliverySummary {
  std::string delivery_id;
  std::string status;  // "pending" | "delivered" | "retrying" | "dead" | "unspecified"
  int attempts = 0;
};

struct StoredAlert {
  std::string alert_id;
  std::string incident_id;
  std::string state;
  int revision = 0;
  std::string json;  // AlertToJson() of the latest stored revision
  int64_t updated_ms = 0;
  std::vector<DeliverySummary> deliveries;  // by delivery_id
};

// The state's alerts, latest revision each, newest first; `limit` 1..1000.
Result<std::vector<StoredAlert>> ListAlerts(Db& db, std::string_view state, int limit);
Result<StoredAlert> GetAlert(Db& db, std::string_view state, std::string_view alert_id);

struct Incident {
  std::string incident_id;
  std::vector<StoredAlert> alerts;  // newest first
};

// The state's incidents with their alerts, the most recently updated first;
// `limit` (incidents) 1..1000.
Result<std::vector<Incident>> ListIncidents(Db& db, std::string_view state, int limit);

}  // namespace amparo::gateway
