// Status and Result<T>: errors as values at module boundaries (STYLE.md 6).
// A small shared vocabulary of codes; `IsRetryable` says which ones a caller
// may retry. Thread-compatible value types.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace amparo {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the input is wrong; retrying will not help
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,    // authenticated but not allowed
  kUnauthenticated,     // no or bad credentials
  kResourceExhausted,   // a bound was hit (queue full, rate limit); retryable
  kFailedPrecondition,  // the system is not in a state to do this
  kUnavailable,         // transient: network, peer down, busy; retryable
  kDeadlineExceeded,    // timed out; retryable
  kDataLoss,            // stored data is corrupt
  kInternal,            // a bug or an unexpected library failure
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, std::string field = {})
      : code_(code), message_(std::move(message)), field_(std::move(field)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The input field the error is about ("" when none), e.g. "lat" or
  // "gateway.listen". Surfaces in HTTP errors as {"error": {"field"}}.
  const std::string& field() const { return field_; }
  bool IsRetryable() const;
  // "INVALID_ARGUMENT: lat: must be within -90..90"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string field_;
};

inline Status InvalidArgument(std::string msg, std::string field = {}) {
  return {StatusCode::kInvalidArgument, std::move(msg), std::move(field)};
}
inline Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
inline Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
inline Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(data_);
  }
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace amparo

#define AMPARO_RETURN_IF_ERROR(expr)           \
  do {                                         \
    ::amparo::Status amparo_status_ = (expr);  \
    if (!amparo_status_.ok()) return amparo_status_; \
  } while (0)
