#include "services/notify/webhook_channel.h"

#include <curl/curl.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "common/crypto.h"
#include "common/log.h"

namespace amparo::notify {

std::string_view SendOutcomeName(SendOutcome outcome) {
  switch (outcome) {
    case SendOutcome::kDelivered:
      return "delivered";
    case SendOutcome::kRetryable:
      return "retryable";
    case SendOutcome::kPermanent:
      return "permanent";
  }
  return "unknown";
}

Result<std::string> SignWebhook(std::string_view secret, std::string_view message_id, int64_t timestamp_s,
                                std::string_view body) {
  constexpr std::string_view kPrefix = "whsec_";
  if (secret.substr(0, kPrefix.size()) == kPrefix) secret.remove_prefix(kPrefix.size());
  auto key = Base64Decode(secret);
  if (!key.ok() || key->empty()) return InvalidArgument("not \"whsec_\" followed by base64", "secret");
  std::string signed_content;
  signed_content.reserve(message_id.size() + body.size() + 24);
  signed_content.append(message_id).append(".").append(std::to_string(timestamp_s)).append(".").append(body);
  return "v1," + Base64Encode(HmacSha256(*key, signed_content));
}

SendResult ClassifyHttpStatus(long status_code, std::string_view response_excerpt) {
  if (status_code >= 200 && status_code < 300) return SendResult::Delivered();
  std::string error = "HTTP " + std::to_string(status_code);
  if (!response_excerpt.empty()) error.append(": ").append(response_excerpt);
  // 408 and 429 say "later"; 5xx is the recipient's own trouble, which it may fix.
  if (status_code == 408 || status_code == 429 || status_code >= 500) return SendResult::Retryable(error);
  // 410 Gone is the Standard Webhooks way to unsubscribe; other 4xx mean the
  // request itself is refused and resending the same bytes cannot help; a 3xx
  // is a redirect we deliberately do not follow (it would leak the signed body
  // to a host the subscription did not name).
  return SendResult::Permanent(error);
}

namespace {

std::once_flag g_curl_init_once;  // curl_global_init must run once per process, before any handle
CURLcode g_curl_init_result = CURLE_OK;

}  // namespace

struct WebhookChannel::Impl {
  struct Request {
    std::string delivery_id;
    std::string body;           // curl reads the POST body from here: must outlive the transfer
    std::string response_head;  // first bytes of the response, for the error message
    int64_t max_response_head = 0;
    curl_slist* headers = nullptr;
    Done done;
  };

  WebhookChannelOptions options;
  const Clock& clock;
  CURLM* multi = nullptr;
  std::map<CURL*, std::unique_ptr<Request>> requests;

  Impl(WebhookChannelOptions o, const Clock& c) : options(std::move(o)), clock(c) {}

  ~Impl() {
    for (auto& [easy, request] : requests) {
      curl_multi_remove_handle(multi, easy);
      curl_easy_cleanup(easy);
      curl_slist_free_all(request->headers);
    }
    if (multi) curl_multi_cleanup(multi);
  }

  static size_t KeepHead(char* data, size_t size, size_t count, void* user) {
    auto* request = static_cast<Request*>(user);
    size_t n = size * count;
    auto room = static_cast<size_t>(std::max<int64_t>(
        0, request->max_response_head - static_cast<int64_t>(request->response_head.size())));
    request->response_head.append(data, std::min(n, room));
    return n;  // everything consumed; the rest is discarded
  }

  void Finish(CURL* easy, CURLcode code) {
    auto it = requests.find(easy);
    if (it == requests.end()) return;
    std::unique_ptr<Request> request = std::move(it->second);
    requests.erase(it);
    SendResult result;
    if (code == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      result = ClassifyHttpStatus(status, request->response_head);
    } else {
      // Connection refused, DNS failure, TLS trouble, timeouts: the network
      // or the recipient may recover, so retry (the retry stage bounds it).
      result = SendResult::Retryable(std::string("curl: ") + curl_easy_strerror(code));
    }
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    curl_slist_free_all(request->headers);
    request->done(request->delivery_id, result);
  }
};

WebhookChannel::WebhookChannel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WebhookChannel::~WebhookChannel() = default;

Result<std::unique_ptr<WebhookChannel>> WebhookChannel::Create(const WebhookChannelOptions& options,
                                                               const Clock& clock) {
  std::call_once(g_curl_init_once, [] { g_curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (g_curl_init_result != CURLE_OK) {
    return Internal(std::string("curl_global_init: ") + curl_easy_strerror(g_curl_init_result));
  }
  auto impl = std::make_unique<Impl>(options, clock);
  if (impl->options.user_agent.empty())
    impl->options.user_agent = std::string("amparo-notify/") + AMPARO_VERSION;
  impl->multi = curl_multi_init();
  if (!impl->multi) return Internal("curl_multi_init failed");
  // A request never waits behind another: no pipelining or multiplexing and
  // no cap per host, so each request in flight has a connection of its own
  // and a slow recipient holds up no one. A finished request's connection
  // stays open (HTTP/1.1 keep-alive) for the next one to the same endpoint,
  // which then skips the connect (and, for https, the TLS handshake); at most
  // max_in_flight idle ones are kept. A connection the recipient closed
  // meanwhile is noticed and replaced by curl before or while sending (its
  // retry of a request that got no response byte), not counted as an attempt.
  curl_multi_setopt(impl->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
  curl_multi_setopt(impl->multi, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
  curl_multi_setopt(impl->multi, CURLMOPT_MAXCONNECTS,
                    static_cast<long>(std::max(1, impl->options.max_in_flight)));
  return std::unique_ptr<WebhookChannel>(new WebhookChannel(std::move(impl)));
}

Status WebhookChannel::Send(const OutboundMessage& message, Done done) {
  if (InFlight() >= impl_->options.max_in_flight) {
    return {StatusCode::kResourceExhausted,
            "webhook channel: " + std::to_string(InFlight()) + " requests in flight"};
  }
  if (message.url.rfind("http://", 0) != 0 && message.url.rfind("https://", 0) != 0) {
    return InvalidArgument("not an http(s) URL", "url");
  }
  const int64_t timestamp_s = impl_->clock.NowMs() / 1000;
  auto signature = SignWebhook(message.secret, message.delivery_id, timestamp_s, message.body);
  if (!signature.ok()) return signature.status();

  auto request = std::make_unique<Impl::Request>();
  request->delivery_id = message.delivery_id;
  request->body = message.body;
  request->max_response_head = impl_->options.max_error_body;
  request->done = std::move(done);
  for (const std::string& header :
       {std::string("Content-Type: application/json"), "User-Agent: " + impl_->options.user_agent,
        "webhook-id: " + message.delivery_id, "webhook-timestamp: " + std::to_string(timestamp_s),
        "webhook-signature: " + *signature,
        // curl would otherwise send "Expect: 100-continue" for larger bodies
        // and wait for the recipient's interim answer.
        std::string("Expect:")}) {
    curl_slist* extended = curl_slist_append(request->headers, header.c_str());
    if (!extended) {
      curl_slist_free_all(request->headers);
      return Internal("curl_slist_append failed");
    }
    request->headers = extended;
  }

  CURL* easy = curl_easy_init();
  if (!easy) {
    curl_slist_free_all(request->headers);
    return Internal("curl_easy_init failed");
  }
  curl_easy_setopt(easy, CURLOPT_URL, message.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(impl_->options.timeout_ms));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(impl_->options.timeout_ms));
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request->body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request->body.size()));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->headers);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Impl::KeepHead);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, request.get());
  CURLMcode added = curl_multi_add_handle(impl_->multi, easy);
  if (added != CURLM_OK) {
    curl_easy_cleanup(easy);
    curl_slist_free_all(request->headers);
    return Internal(std::string("curl_multi_add_handle: ") + curl_multi_strerror(added));
  }
  impl_->requests.emplace(easy, std::move(request));
  return Status::Ok();
}

void WebhookChannel::Poll() {
  if (impl_->requests.empty()) return;
  int running = 0;
  CURLMcode code = curl_multi_perform(impl_->multi, &running);
  if (code != CURLM_OK) log::Error("curl_multi_perform failed", {{"error", curl_multi_strerror(code)}});
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(impl_->multi, &queued)) {
    // Finish() runs the caller's callback, which may Send() again; the multi
    // handle allows adding handles while reading messages.
    if (msg->msg == CURLMSG_DONE) impl_->Finish(msg->easy_handle, msg->data.result);
  }
}

int WebhookChannel::InFlight() const { return static_cast<int>(impl_->requests.size()); }

bool WebhookChannel::WaitForProgress(std::chrono::milliseconds max_wait) {
  if (impl_->requests.empty()) return false;
  int ready = 0;
  CURLMcode code = curl_multi_wait(impl_->multi, nullptr, 0, static_cast<int>(max_wait.count()), &ready);
  if (code != CURLM_OK) {
    log::Error("curl_multi_wait failed", {{"error", curl_multi_strerror(code)}});
    return false;
  }
  return true;
}

}  // namespace amparo::notify
