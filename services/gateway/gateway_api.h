// The gateway's HTTP API without the transport: routing, bearer
// authentication, role checks, input validation, JSON in and out. The Beast
// server (http_server.h) turns wire requests into HttpRequest and back, so
// this file never sees a socket and the server never sees a table.
//
// Every /api/v1/ route authenticates the bearer token and scopes all reads
// and writes to the token's state; another state's object is 404, exactly
// as if it did not exist (DESIGN.md guarantee 4). Errors are
//   {"error": {"code": "invalid_argument", "message": "...", "field": "lat"}}
// with the HTTP status that fits the code (docs/openapi.yaml).
//
// Thread safety: GatewayApi is used by one thread (the HTTP thread) with its
// own Db. GatewayMetrics is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/db.h"
#include "common/status.h"
#include "services/gateway/gateway_store.h"

namespace amparo::gateway {

struct HttpRequest {
  std::string method;         // "GET", "POST", ...
  std::string target;         // origin-form: "/api/v1/registrants?limit=10"
  std::string authorization;  // the Authorization header, "" when absent
  std::string content_type;   // the Content-Type header, "" when absent
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;                                          // empty for 204
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
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

// The route template of `target` for metrics ("/api/v1/registrants/{id}"),
// or "other". Keeps label cardinality bounded.
std::string_view RouteLabel(std::string_view target);

// The alert as the API, the console and the live feed show it: exactly
// AlertToJson() plus "deliveries": [{"delivery_id","status","attempts"}].
std::string AlertApiJson(const StoredAlert& alert);
// A live-feed frame: {"type":"alert","alert":<AlertApiJson>}.
std::string LiveAlertFrame(const StoredAlert& alert);

class GatewayApi {
 public:
  // `db`, `clock` and `metrics` must outlive the GatewayApi.
  GatewayApi(Db& db, const Clock& clock, GatewayMetrics& metrics);

  // Handles one request completely; never throws.
  HttpResponse Handle(const HttpRequest& request);

  // Checks the first message of a live-feed WebSocket, {"token": "amp_..."}:
  // the token must be valid and operator or admin. kInvalidArgument for a
  // malformed message, kUnauthenticated, kPermissionDenied.
  Result<Token> AuthenticateLive(std::string_view first_message);

 private:
  HttpResponse Route(const HttpRequest& request, std::string_view* route);

  Db& db_;
  const Clock& clock_;
  GatewayMetrics& metrics_;
};

}  // namespace amparo::gateway
