// Test support: calling GatewayApi in process, as the HTTP server would.
// Test-only (included by *_test.cpp).
#pragma once

#include <string>

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

}  // namespace amparo::gateway
