// Test support: calling GatewayApi in process, as the HTTP server would.
// Test-only (included by *_test.cpp).
#pragma once

#include <string>
#include <vector>

#include "amparo/v1/envelope.pb.h"
#include "services/gateway/gateway_api.h"

namespace amparo::gateway {

// A request with a JSON body (when `body` is not empty), the bearer `token`
// (none when empty) and the X-Amparo-Purpose `purpose` (default when empty).
inline HttpRequest MakeApiRequest(const std::string& method, const std::string& target, const std::string& token,
                              const std::string& body = "", const std::string& purpose = "") {
  HttpRequest req;
  req.method = method;
  req.target = target;
  if (!token.empty()) req.authorization = "Bearer " + token;
  req.content_type = body.empty() ? "" : "application/json";
  req.purpose = purpose;
  req.body = body;
  return req;
}

// API options for tests that make many calls as one client: the rate limit
// out of the way (its own tests set it).
inline GatewayApiOptions UnlimitedRateApiOptions() {
  GatewayApiOptions options;
  options.rate_limit_per_s = 1e6;
  options.rate_limit_burst = 1e6;
  return options;
}

// The registry changes `envelopes` carry, in order: a registry_change
// message's one change, every change of a registry_changes batch; other
// payloads are skipped.
inline std::vector<v1::RegistryChange> RegistryChangesIn(const std::vector<v1::Envelope>& envelopes) {
  std::vector<v1::RegistryChange> changes;
  for (const auto& e : envelopes) {
    if (e.has_registry_change()) changes.push_back(e.registry_change());
    if (e.has_registry_changes()) {
      for (const auto& c : e.registry_changes().changes()) changes.push_back(c);
    }
  }
  return changes;
}

}  // namespace amparo::gateway
