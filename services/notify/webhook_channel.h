// The webhook channel: signed HTTP POSTs following the Standard Webhooks
// specification (https://www.standardwebhooks.com, DESIGN.md "Public
// interfaces").
//
// Each request carries
//   webhook-id:        the delivery id (the recipient's idempotency key)
//   webhook-timestamp: unix seconds at send time
//   webhook-signature: "v1," + base64(HMAC-SHA256(key, id "." timestamp "." body))
//                      where key = base64-decode(secret without "whsec_")
//   Content-Type: application/json, User-Agent: amparo-notify/<version>
//
// Outcome of one request:
//   2xx                                  delivered
//   408, 429, 5xx, connect error/timeout retryable
//   410 Gone, other 4xx, 3xx             permanent (redirects are never followed)
//
// Requests run concurrently on one libcurl multi handle driven by Poll()
// (non-blocking), at most `max_in_flight` at once, each bounded by
// `timeout_ms`; a recipient that hangs holds one slot until its timeout and
// nothing else. Response bodies are read and discarded, except the first
// bytes kept for the error message.
//
// Thread safety: one thread calls Send and Poll.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "services/notify/channel.h"

namespace amparo::notify {

// The value of the webhook-signature header ("v1,<base64>") for one
// message. kInvalidArgument (field "secret") when the secret is not
// "whsec_" followed by canonical base64 (the "whsec_" prefix is optional,
// as in the reference libraries).
Result<std::string> SignWebhook(std::string_view secret, std::string_view message_id, int64_t timestamp_s,
                                std::string_view body);

struct WebhookChannelOptions {
  int max_in_flight = 16;        // concurrent requests; Send beyond it gives kResourceExhausted
  int timeout_ms = 10000;        // whole request (connect + send + response)
  std::string user_agent;        // default "amparo-notify/<version>"
  int64_t max_error_body = 200;  // response bytes quoted in the error of a failed request
};

class WebhookChannel final : public Channel {
 public:
  // `clock` gives the webhook-timestamp; it must outlive the channel.
  // kInternal if libcurl cannot be initialised.
  static Result<std::unique_ptr<WebhookChannel>> Create(const WebhookChannelOptions& options,
                                                        const Clock& clock);
  ~WebhookChannel() override;
  WebhookChannel(const WebhookChannel&) = delete;
  WebhookChannel& operator=(const WebhookChannel&) = delete;

  Status Send(const OutboundMessage& message, Done done) override;
  void Poll() override;
  int InFlight() const override;
  // curl_multi_wait on the requests' sockets.
  bool WaitForProgress(std::chrono::milliseconds max_wait) override;

 private:
  struct Impl;
  explicit WebhookChannel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Classifies a completed HTTP exchange by its status code (see above).
SendResult ClassifyHttpStatus(long status_code, std::string_view response_excerpt);

}  // namespace amparo::notify
