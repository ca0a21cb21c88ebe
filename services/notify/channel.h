// The "send" stage of amparo-notify: a channel carries one delivery to its
// recipient and says how it went. A channel decides what a failure means
// (a 503 is worth retrying, a 400 is not, STYLE.md 7); the retry stage
// (retry_policy.h) decides what to do about it.
//
// Channels are asynchronous: Send() only starts the work and Poll() makes
// progress without blocking, so one slow recipient never holds up another.
//
// Thread safety: a channel belongs to the thread that calls Send and Poll.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <utility>

#include "common/status.h"

namespace amparo::notify {

// Everything a channel needs to send one delivery. The body was built once
// when the delivery was created, so every attempt sends the same bytes.
struct OutboundMessage {
  std::string delivery_id;  // the idempotency key (webhook-id); stable across retries
  std::string url;          // the subscription's endpoint
  std::string secret;       // the subscription's "whsec_..." signing secret
  std::string body;         // JSON, sent verbatim
};

enum class SendOutcome {
  kDelivered,  // the recipient accepted it: stop
  kRetryable,  // a transient failure: try again later
  kPermanent,  // will never succeed as is: dead-letter it
};

struct SendResult {
  SendOutcome outcome = SendOutcome::kDelivered;
  std::string error;  // "" when delivered; otherwise what went wrong, e.g. "HTTP 503"

  static SendResult Delivered() { return {SendOutcome::kDelivered, {}}; }
  static SendResult Retryable(std::string error) { return {SendOutcome::kRetryable, std::move(error)}; }
  static SendResult Permanent(std::string error) { return {SendOutcome::kPermanent, std::move(error)}; }
};

std::string_view SendOutcomeName(SendOutcome outcome);

class Channel {
 public:
  // Called exactly once per accepted Send, from inside Poll().
  using Done = std::function<void(const std::string& delivery_id, const SendResult& result)>;

  virtual ~Channel() = default;
  // Starts sending `message`; never blocks. Returns kResourceExhausted when
  // the channel is at its concurrency bound (nothing started, `done` is not
  // called), kInvalidArgument when `message` can never be sent (e.g. a
  // malformed secret; nothing started, `done` is not called).
  virtual Status Send(const OutboundMessage& message, Done done) = 0;
  // Makes progress on every send in flight without blocking and runs `done`
  // for each one that finished.
  virtual void Poll() = 0;
  // Sends started and not yet reported through `done`.
  virtual int InFlight() const = 0;
  // Blocks until a send in flight can make progress (its socket is ready or
  // one of its timers is due) or `max_wait` passed, without running `done`;
  // the caller polls next. Returns false when the channel cannot wait that
  // way (the caller then waits on its own clock). The default cannot.
  virtual bool WaitForProgress(std::chrono::milliseconds max_wait) {
    (void)max_wait;
    return false;
  }
};

}  // namespace amparo::notify
