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
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/db.h"
#include "common/status.h"
#include "services/gateway/registry_keys.h"

namespace amparo::v1 {
class ConsularAlert;
class DeliveryStatus;
}  // namespace amparo::v1

namespace amparo::gateway {

// Creates or upgrades every gateway table (and the link tables, so the HTTP
// thread can enqueue before the link senders exist, and the audit log).
// Idempotent.
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

// What `amparo token list` shows: never the token itself (only its hash is
// stored).
struct TokenInfo {
  std::string id;
  std::string state;
  Role role = Role::kOperator;
  int64_t created_ms = 0;
  int64_t revoked_ms = 0;  // 0 = live
};

// The tokens of `state` ("" = every state), oldest first, revoked included.
Result<std::vector<TokenInfo>> ListTokens(Db& db, std::string_view state);

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

// An accompanying household member (MICIC G2, G13: mixed-nationality
// families). No name: only what evacuation planning needs.
struct HouseholdMember {
  std::string age_band;     // "0-4" | "5-17" | "18-59" | "60+"
  std::string nationality;  // ISO3
  bool operator==(const HouseholdMember&) const = default;
};

struct ContactChannels {
  std::string email;  // "" when not given
  std::string phone;  // E.164, "" when not given
};

struct EmergencyContact {
  std::string name;
  std::string phone;  // E.164
  std::string email;
};

// Informed consent, scope by scope (MICIC G2, G7).
struct Consent {
  bool crisis_contact = false;
  bool share_aggregate_with_partners = false;
  bool share_with_international_orgs = false;
  int64_t recorded_ms = 0;     // when consent was recorded; 0 = never
  std::string notice_version;  // the data-handling notice the person saw
};

// One registered national abroad. Deliberately no immigration status.
// full_name, contact and emergency_contact are personal data: encrypted at
// rest (registry_keys.h) and shown only to registrar and admin tokens.
struct Registrant {
  std::string id;            // 32 hex, assigned by InsertRegistrant
  std::string state;         // ISO3 of the registering state
  std::string external_ref;  // the state's own reference, unique per state
  std::string full_name;     // "" when not given
  std::string host_country;  // ISO3
  double lat = 0;
  double lon = 0;
  int location_precision_m = 0;  // radius of uncertainty; 0 = not stated
  std::string place_name;        // gazetteer place the location came from, "" if none
  std::string admin1;            // first-level subdivision code, "" when unknown
  int household_size = 1;        // 1..50, the registrant included
  std::vector<HouseholdMember> household_members;
  std::vector<std::string> languages;  // BCP-47 tags, by preference
  ContactChannels contact;
  EmergencyContact emergency_contact;
  std::string travel_document_expiry;        // "YYYY-MM-DD" or ""
  std::vector<std::string> vulnerabilities;  // names from kVulnerabilityNames
  Consent consent;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::string retention_until;  // "YYYY-MM-DD": purged once this date has passed
};

// Who reads or writes personal data and why: every such access is written
// to the audit log (common/audit.h) in the same transaction.
struct Access {
  std::string actor;                             // token id, "cli:<user>", "system:retention"
  std::string purpose = "registry-maintenance";  // see kAccessPurposes
};

// The purposes a caller may state (HTTP header X-Amparo-Purpose).
inline constexpr std::string_view kAccessPurposes[] = {"registry-maintenance", "crisis-response",
                                                       "consular-assistance", "evacuation-planning"};

// Stores `registrant` (its id and times are assigned here and returned),
// bumps the registry sequence, enqueues a RegistryChange UPSERT for peer
// "rules" and appends audit "registrant.create", all in one transaction.
// kAlreadyExists (field "external_ref") when the state already has that
// external_ref.
Result<Registrant> InsertRegistrant(Db& db, Registrant registrant, const RegistryKeys& keys,
                                    const Access& access, const Clock& clock);

// A registrant made ready to store by RegistrantSealer: id and times
// assigned, personal data sealed, the stored text columns built. Holds the
// sealed bytes only, never the personal plaintext outside `registrant`.
struct SealedRegistrant {
  Registrant registrant;  // id, created_ms and updated_ms assigned
  std::string sealed;     // registry_keys.h layout, bound to id and state
  std::string key_id;     // the key that sealed it
  std::string languages, vulnerabilities, household_members, consent;  // stored forms
};

// The per-row work of storing a registrant that needs no database: a bulk
// import runs it on its reader thread so that the single SQLite writer only
// binds and steps. Ids are 32 hex digits like NewId(): a random 80-bit
// prefix per sealer and a 48-bit counter from a random start, so rows sealed
// together get adjacent ids and the id-keyed B-trees take an import as
// appends. Ids and nonces come from a ChaCha20 pool reseeded from the OS
// every 16 KiB. Thread safety: one sealer per thread; `keys` and `clock`
// must outlive it.
class RegistrantSealer {
 public:
  RegistrantSealer(const RegistryKeys& keys, const Clock& clock);
  RegistrantSealer(RegistrantSealer&&) noexcept;
  ~RegistrantSealer();
  // Moves `registrant` into `out` (whose buffers are reused) and fills the rest.
  void Seal(Registrant registrant, SealedRegistrant* out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Zeroes and frees the personal fields (full name, contact channels,
// emergency contact) of a registrant whose sealed form is all that will be
// stored: a bulk import's rows go to the writer without them, so plaintext
// personal data lives only between parsing and sealing.
void WipePersonal(Registrant* r);

// Inserts registrants inside the caller's transaction (bulk import):
// statements are prepared once. Insert() assigns id and times (or takes a
// SealedRegistrant's), seals the personal data, numbers the change with the
// next registry sequence and enqueues the RegistryChange; it does not audit.
// kAlreadyExists (field "external_ref") for a duplicate; the failed row
// leaves nothing behind (SQLite statement atomicity), takes no sequence
// number, and the transaction goes on. The registry sequence is read by
// Prepare() and written back once by Finish(), and the outbox rows are
// written in chunks, the last by Finish(): call Prepare() after the
// transaction began and Finish() before it commits (a transaction committed
// without Finish() would lose messages and leave the sequence behind).
class RegistrantInserter {
 public:
  static Result<RegistrantInserter> Prepare(Db& db, const RegistryKeys& keys, const Clock& clock);
  Status Insert(Registrant& registrant);
  // `row` must come from a RegistrantSealer over the same keys; its
  // registrant is left as stored.
  Status Insert(SealedRegistrant& row);
  Status Finish();
  RegistrantInserter(RegistrantInserter&&) noexcept;
  ~RegistrantInserter();

 private:
  struct Impl;
  explicit RegistrantInserter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads one registrant and audits "registrant.read". `keys` null: the
// personal fields are left empty (not even decrypted): operators' view.
// kNotFound (not audited) when the state has no such registrant; kDataLoss
// when its personal data does not open with the keys given.
Result<Registrant> GetRegistrant(Db& db, std::string_view state, std::string_view id,
                                 const RegistryKeys* keys, const Access& access, const Clock& clock);

struct RegistrantFilter {
  std::string host_country;   // "" = any
  std::string admin1;         // "" = any
  std::string vulnerability;  // a kVulnerabilityNames entry, "" = any
};

struct RegistrantPage {
  std::vector<Registrant> items;
  std::optional<std::string> next_cursor;  // pass back to get the next page
};

// Keyset pagination in id order; audits "registrant.list". `cursor` ""
// starts at the beginning; `limit` must be 1..1000. `keys` as in GetRegistrant.
Result<RegistrantPage> ListRegistrants(Db& db, std::string_view state, const RegistrantFilter& filter,
                                       std::string_view cursor, int limit, const RegistryKeys* keys,
                                       const Access& access, const Clock& clock);

// Reads the registrant, lets `apply` compute its new content (validation
// lives there), stores it and audits "registrant.update", in one
// transaction. A RegistryChange UPSERT is enqueued only when a
// matching-relevant field (host_country, admin1, lat, lon, household_size,
// vulnerabilities) changed. id, state and created_ms cannot change.
// kNotFound when the state has no such registrant; apply's error as is.
using RegistrantUpdate = std::function<Result<Registrant>(const Registrant& current)>;
Result<Registrant> UpdateRegistrant(Db& db, std::string_view state, std::string_view id,
                                    const RegistrantUpdate& apply, const RegistryKeys& keys,
                                    const Access& access, const Clock& clock);

// Deletes the registrant, enqueues a RegistryChange DELETE for "rules" and
// audits "registrant.delete" in the same transaction. kNotFound when the
// state has no such registrant.
Status DeleteRegistrant(Db& db, std::string_view state, std::string_view id, const Access& access,
                        const Clock& clock);

// Calls `visit` for every registrant of `state` in id order, decrypted,
// inside one transaction that also audits "registrant.export" (`detail`
// says how many rows and the format). The visitor's error stops the walk
// and rolls the audit back.
Result<int64_t> ForEachRegistrant(Db& db, std::string_view state, const RegistryKeys& keys,
                                  const Access& access, std::string_view detail, const Clock& clock,
                                  const std::function<Status(const Registrant&)>& visit);

// Deletes registrants whose retention_until is before today's UTC date
// (clock), at most `batch` per transaction, each with a RegistryChange
// DELETE and an audit "registrant.purge" by "system:retention", until none
// is left. Returns how many were purged.
Result<int64_t> PurgeExpiredRegistrants(Db& db, const Clock& clock, int batch = 500);

// Re-seals every registrant whose personal data is sealed with another key
// than keys.current_id(), 1000 rows per transaction. Returns how many rows
// were re-sealed. kDataLoss when a row's key is not in `keys`.
Result<int64_t> ReencryptRegistry(Db& db, const RegistryKeys& keys);

// The key ids that sealed rows use, with their row counts.
Result<std::vector<std::pair<std::string, int64_t>>> RegistryKeyUsage(Db& db);

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

// Stores `alert` (its serialized ConsularAlert; the JSON is rendered when it
// is read) unless the stored row is at least as new by (revision,
// notification): a repeat of the stored revision (higher notification)
// replaces the row, it never adds one. Returns true when it was stored.
// kInvalidArgument for an alert without alert_id or with a malformed state.
// Call inside the caller's transaction.
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
  // AlertToJson() of the latest stored revision: rendered from the stored
  // message, or the JSON text stored by gateways before the message was.
  std::string json;
  int64_t updated_ms = 0;
  std::vector<DeliverySummary> deliveries;  // by delivery_id
  // The gateway's silence named by a silenced revision (same state only);
  // empty when the revision is not silenced or the silence is unknown here.
  std::string silence_id;
  std::string silence_reason;
  int64_t silence_ends_ms = 0;
  int64_t silence_lifted_ms = 0;  // 0 unless lifted early
};

// The state's alerts, latest revision each, newest first; `limit` 1..1000.
// Reading an alert whose stored message does not parse (or names another
// alert) fails the whole call with kDataLoss naming that alert_id; another
// state never sees the row (its GetAlert is kNotFound).
Result<std::vector<StoredAlert>> ListAlerts(Db& db, std::string_view state, int limit);
Result<StoredAlert> GetAlert(Db& db, std::string_view state, std::string_view alert_id);

// The alert as GetAlert() would show it, for a caller that has just stored
// `alert` (UpsertAlert returned true, same transaction) and so need not read
// the stored message back and parse it: the JSON is rendered from `alert`;
// the row's time, deliveries and silence come from `db`. kNotFound when the
// state has no such alert; kFailedPrecondition when the row holds another
// (revision, notification) than `alert`.
Result<StoredAlert> StoredAlertOfMessage(Db& db, const v1::ConsularAlert& alert);

struct Incident {
  std::string incident_id;
  std::vector<StoredAlert> alerts;  // newest first
};

// The state's incidents with their alerts, the most recently updated first;
// `limit` (incidents) 1..1000. kDataLoss as ListAlerts.
Result<std::vector<Incident>> ListIncidents(Db& db, std::string_view state, int limit);

}  // namespace amparo::gateway
