// The gateway's HTTP API without the transport: routing, bearer
// authentication, role checks, input validation, JSON in and out. The Beast
// server (http_server.h) turns wire requests into HttpRequest and back, so
// this file never sees a socket and the server never sees a table.
//
// Every /api/v1/ route authenticates the bearer token, applies the token's
// rate limit (429 with Retry-After) and scopes all reads and writes to the
// token's state; another state's object is 404, exactly as if it did not
// exist (DESIGN.md guarantee 4). Registry reads and writes are audited with
// the purpose the caller states in X-Amparo-Purpose (kAccessPurposes;
// default "registry-maintenance"). Operators read registrants without
// full_name, contact and emergency_contact (data minimisation). Errors are
//   {"error": {"code": "invalid_argument", "message": "...", "field": "lat"}}
// with the HTTP status that fits the code (docs/openapi.yaml).
//
// Thread safety: GatewayApi is used by one thread (the HTTP thread) with its
// own Db. GatewayMetrics is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/db.h"
#include "common/gazetteer.h"
#include "common/status.h"
#include "services/gateway/gateway_store.h"
#include "services/gateway/rate_limiter.h"
#include "services/gateway/registry_keys.h"

namespace amparo::gateway {

struct HttpRequest {
  std::string method;         // "GET", "POST", ...
  std::string target;         // origin-form: "/api/v1/registrants?limit=10"
  std::string authorization;  // the Authorization header, "" when absent
  std::string content_type;   // the Content-Type header, "" when absent
  std::string purpose;        // the X-Amparo-Purpose header, "" when absent
  std::string body;
  // Set (and `body` empty) when the server streamed the body of an upload
  // route (IsUploadRoute) to this file; the server deletes it afterwards.
  std::filesystem::path body_file;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;                                          // empty for 204
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // When set, the body is this file (exports); the server streams it and
  // deletes it after sending.
  std::filesystem::path body_file;
};

// One route of the API: the table the router dispatches on, exposed so the
// tenant-isolation test can prove it covers every route.
struct RouteInfo {
  std::string_view method;  // "GET", "POST", "PATCH", "DELETE"
  std::string_view path;    // template: "/api/v1/registrants/{id}"
  bool authenticated;       // false: /, /healthz, /metrics
  std::vector<Role> roles;  // who may call it (empty when not authenticated)
  bool upload;              // the body is streamed to a file (bulk import)
};
const std::vector<RouteInfo>& GatewayRoutes();

// True when `method` + the path of `target` is an upload route: the server
// then streams the body to a file, bounded by max_import_bytes instead of
// max_body_bytes.
bool IsUploadRoute(std::string_view method, std::string_view target);
// Bulk import and export: long requests the server runs on its bulk worker
// (HttpServerOptions::bulk_handler) so that they never hold up the others.
bool IsBulkRoute(std::string_view method, std::string_view target);

struct GatewayApiOptions {
  int retention_days = 730;       // default retention of a new registrant
  double rate_limit_per_s = 50;   // per token
  double rate_limit_burst = 200;  // per token
  int import_batch_rows = 1000;   // rows per import transaction
  // Exports are written here before they are sent (bounded memory); ""
  // builds them in memory (tests that call Handle() directly).
  std::filesystem::path spool_dir;
};

// An error response: {"error": {"code", "message", "field"}}.
HttpResponse ErrorResponse(int http_status, std::string_view code, std::string_view message,
                           std::string_view field = {});
// The error response for `status` (must not be OK): 400 invalid_argument,
// 401 unauthenticated, 403 permission_denied, 404 not_found, 409
// already_exists / failed_precondition, 429 resource_exhausted, 503
// unavailable, 500 otherwise (the message of an internal error is not shown).
HttpResponse StatusResponse(const Status& status);

// Request counters by route template and status, alerts received, live
// clients; rendered as Prometheus text. Thread-safe.
class GatewayMetrics {
 public:
  void CountRequest(std::string_view route, int http_status);
  void CountAlertReceived() { alerts_received_.fetch_add(1); }
  void SetLiveClients(int64_t n) { live_clients_.store(n); }
  std::string Render(int64_t registrants) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // bounded: route templates x statuses
  std::atomic<uint64_t> alerts_received_{0};
  std::atomic<int64_t> live_clients_{0};
};

// The route template of `target` for metrics ("/api/v1/registrants/{id}",
// from GatewayRoutes()), or "other". Keeps label cardinality bounded.
std::string_view RouteLabel(std::string_view target);

// The alert as the API, the console and the live feed show it: exactly
// AlertToJson() plus "deliveries": [{"delivery_id","status","attempts"}] and,
// when the revision is silenced by one of the state's silences,
// "silence": {"silence_id","reason","ends_at","lifted_at"}.
std::string AlertApiJson(const StoredAlert& alert);
// A live-feed frame: {"type":"alert","alert":<AlertApiJson>}.
// Both are written as text around `alert.json` (which must be AlertToJson()
// output, as UpsertAlert stores it), byte for byte what a DOM would print,
// without parsing the stored JSON.
std::string LiveAlertFrame(const StoredAlert& alert);

class GatewayApi {
 public:
  // `db`, `clock`, `metrics` and `keys` must outlive the GatewayApi.
  // `gazetteer` may be null: `place` inputs are then refused.
  GatewayApi(Db& db, const Clock& clock, GatewayMetrics& metrics, const RegistryKeys& keys,
             std::shared_ptr<const Gazetteer> gazetteer, GatewayApiOptions options = {});
  ~GatewayApi();

  // Handles one request completely; never throws.
  HttpResponse Handle(const HttpRequest& request);

  // Checks an upload's headers before its body is read: the token, its
  // rate limit and its role. nullopt: go on; otherwise the response to send.
  std::optional<HttpResponse> Preflight(const HttpRequest& headers_only);

  // Checks the first message of a live-feed WebSocket, {"token": "amp_..."}:
  // the token must be valid and operator or admin. kInvalidArgument for a
  // malformed message, kUnauthenticated, kPermissionDenied.
  Result<Token> AuthenticateLive(std::string_view first_message);

 private:
  HttpResponse Route(const HttpRequest& request, std::string_view* route);

  Db& db_;
  const Clock& clock_;
  GatewayMetrics& metrics_;
  const RegistryKeys& keys_;
  std::shared_ptr<const Gazetteer> gazetteer_;
  GatewayApiOptions options_;
  std::unique_ptr<RateLimiter> limiter_;
};

}  // namespace amparo::gateway
