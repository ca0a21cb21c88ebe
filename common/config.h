// Amparo's configuration: one TOML file for every daemon of a deployment
// (each daemon reads its own section and the shared ones). Every key has a
// default, documented here and in docs/configuration.md. Load() checks the
// whole file and names the first bad key: daemons refuse to start on it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace amparo {

enum class CurveMode { kAuto, kOn, kOff };

// [link]: the durable hand-off between daemons (common/link.h).
struct LinkOptions {
  int resend_after_ms = 2000;  // resend an unacknowledged message after this long
  int window = 512;            // unacknowledged messages in flight per link; the rest wait in the outbox
  int high_water_mark = 1000;  // ZeroMQ SNDHWM/RCVHWM; at the bound sends wait (the outbox keeps them)
  int batch = 256;             // messages stored per receiver transaction
  // "auto": CURVE encryption + ZAP allow-list on tcp:// endpoints, none on
  // ipc:// (protected by the 0700 run directory); "on": always; "off": never.
  CurveMode curve = CurveMode::kAuto;
};

// [[ingest.poll]]: one feed fetched over HTTP(S).
struct PollSource {
  std::string name;                  // required, unique: the event source name
  std::string url;                   // required, http:// or https://
  // What the source publishes (informative: ingest detects the format from
  // the content): usgs-geojson, cap, cap-atom, cap-rss, gdacs-rss, gdacs-api, auto.
  std::string format = "usgs-geojson";
  int interval_s = 60;               // between fetches; 1..86400
  int timeout_ms = 10000;            // whole request
  std::string validation;            // "strict" | "lenient"; "" = ingest.validation
};

struct IngestOptions {
  // Where ingest receives operator-entered events from the gateway (a
  // LinkReceiver); default ipc://<run_dir>/ingest.ipc.
  std::string inbox;
  std::filesystem::path spool_dir;   // default <data_dir>/spool
  int64_t max_file_bytes = 64 << 20; // larger files are rejected unread
  int scan_interval_ms = 500;        // how often the spool directory is scanned
  // CAP schema/spec checking of spool files: "strict" rejects any deviation,
  // "lenient" accepts known real-world ones with a named warning.
  std::string validation = "lenient";
  int64_t xml_max_document_bytes = 32 << 20;  // bigger XML documents are rejected unparsed
  int xml_max_depth = 64;                     // deeper element nesting is rejected
  int64_t xml_max_elements = 500'000;         // more elements in one document are rejected
  // PEM file or directory of *.pem/*.crt: signers of XML-DSig signed CAP
  // messages we trust; empty = no one (valid signatures are "untrusted").
  std::filesystem::path trust_store;
  // Reject a validly signed message whose signer is not in trust_store
  // (default: accept it with the warning "signature-untrusted").
  bool require_trusted_signers = false;
  // HTTP push of CAP (services/ingest/push_server.h): "host:port" to listen on
  // ("127.0.0.1:0" picks a free port); "" = no listener.
  std::string push_listen;
  // If set, POST /push needs "Authorization: Bearer <push_token>" (else 401).
  std::string push_token;
  int64_t push_max_body_bytes = 1 << 20;  // larger bodies get 413, unread
  std::filesystem::path push_port_file;   // if set, the bound port is written here
  // Correlation by proximity (docs/ingest-correlation.md): two reports from
  // different sources are one incident within these bounds.
  int correlation_earthquake_window_s = 600;          // |onset difference|; 1..86400
  double correlation_earthquake_distance_km = 100;    // epicentres apart; 0..2000
  double correlation_earthquake_magnitude_delta = 1;  // |dM| when both known; 0..5
  int correlation_area_window_h = 48;                 // cyclones, floods, fires...; 1..720
  std::vector<PollSource> poll;
};

struct RulesOptions {
  std::string inbox;                 // default ipc://<run_dir>/rules.ipc
  // Earthquake footprint: the distance at which the predicted Modified
  // Mercalli Intensity drops below this value (6 = "strong" shaking).
  double earthquake_min_mmi = 6.0;
  int max_ids_per_alert = 1000;      // registrant ids carried in one alert
  // Events reported within this many hours (and neither cancelled nor
  // expired) are matched again when the registry changes; 1..8760.
  int active_event_window_h = 72;
  // Registry resynchronisation (services/rules/registry_sync.h).
  int registry_gap_timeout_ms = 10'000;         // a gap open this long (inbox drained): snapshot; 100..3600000
  int registry_snapshot_timeout_ms = 600'000;   // a snapshot not complete after this: asked again; 1000..86400000
  int registry_probe_interval_ms = 60'000;      // probe the registry's sequence this often; 1000..86400000
  int registry_max_ahead_ranges = 10'000;       // out-of-order ranges tracked before a snapshot; 1..10000000
  // The alert policy file (docs/alert-policy.md), re-read on SIGHUP; empty =
  // the built-in policy (deploy/policy.toml). Must exist when set.
  std::filesystem::path policy_file;
};

struct NotifyOptions {
  std::string inbox;                 // default ipc://<run_dir>/notify.ipc
  int max_attempts = 12;             // then the delivery is dead-lettered
  int backoff_initial_ms = 1000;     // doubled per attempt, with full jitter
  int backoff_max_ms = 300000;
  int http_timeout_ms = 10000;
  int max_in_flight = 16;            // concurrent webhook requests
  // Attempt outcomes finished within this interval of the last record are
  // recorded together (one commit, one status message to the gateway),
  // 0..1000 (0: each poll's at once). Until recorded a delivery stays in
  // flight, never sent twice; a crash meanwhile sends it again with the same
  // webhook-id (at-least-once).
  int outcome_commit_interval_ms = 20;
};

struct GatewayOptions {
  std::string inbox;                 // default ipc://<run_dir>/gateway.ipc
  std::string listen = "127.0.0.1:8080";  // host:port; port 0 picks a free one
  int64_t max_body_bytes = 1 << 20;  // larger requests get 413
  int request_timeout_ms = 30000;
  std::filesystem::path port_file;   // if set, the bound port is written here
  int retention_days = 730;          // default retention of a new registrant, 1..36500
  int retention_check_s = 3600;      // how often expired registrants are purged, 1..86400
  // Group commit of the link inbox (alerts and delivery states from notify):
  // under load at most one batch per interval, 0..1000 (0: every wake-up).
  int inbox_commit_interval_ms = 20;
  double rate_limit_per_s = 50;      // requests per second per token, 0.01..100000
  double rate_limit_burst = 200;     // token bucket size per token, 1..1000000
  int64_t max_import_bytes = int64_t{256} << 20;  // bulk import bodies; larger get 413
  int import_batch_rows = 50000;     // rows per import batch (sorted, audited, handed off), 1..100000
  std::filesystem::path gazetteer;   // place-name data; empty = the bundled file
};

struct Config {
  std::filesystem::path file;        // the file it came from
  std::filesystem::path data_dir;    // databases, spool; default <config dir>/data
  std::filesystem::path run_dir;     // ipc sockets; default <config dir>/run
  std::filesystem::path keys_dir;    // CURVE keys, webhook secrets; default <config dir>/keys
  std::string log_level = "info";
  LinkOptions link;
  IngestOptions ingest;
  RulesOptions rules;
  NotifyOptions notify;
  GatewayOptions gateway;

  // Loads and validates the whole file. Errors name the key, e.g.
  //   INVALID_ARGUMENT: notify.max_attempts: must be between 1 and 1000
  static Result<Config> Load(const std::filesystem::path& file);
  // Same, from text; relative paths resolve against `base_dir`.
  static Result<Config> Parse(std::string_view toml_text, const std::filesystem::path& base_dir);

  std::filesystem::path DbPath(std::string_view daemon) const { return data_dir / (std::string(daemon) + ".db"); }
};

}  // namespace amparo
