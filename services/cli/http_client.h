// A small blocking HTTP client (libcurl) for the CLI: one connection reused
// across requests. Not thread-safe; one per thread.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace amparo::cli {

struct HttpResponse {
  long status = 0;
  std::string body;
};

class HttpClient {
 public:
  explicit HttpClient(long timeout_ms = 10000);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // `headers` are "Name: value" lines. Transport failures are Unavailable.
  Result<HttpResponse> Request(const std::string& method, const std::string& url, const std::string& body = {},
                               const std::vector<std::string>& headers = {});

 private:
  void* curl_;
  long timeout_ms_;
};

}  // namespace amparo::cli
