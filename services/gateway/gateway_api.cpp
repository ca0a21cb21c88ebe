#include "services/gateway/gateway_api.h"

#include <boost/json.hpp>
#include <boost/url.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <set>

#include "common/json_text.h"
#include "common/log.h"
#include "services/gateway/console_html.h"

namespace amparo::gateway {
namespace {

namespace json = boost::json;
namespace urls = boost::urls;

std::string ToText(const json::value& v) { return JsonText(v); }

HttpResponse JsonResponse(int status, const json::value& body) {
  HttpResponse r;
  r.status = status;
  r.body = ToText(body);
  return r;
}

json::array StringArray(const std::vector<std::string>& values) {
  json::array a;
  for (const auto& v : values) a.emplace_back(v);
  return a;
}

json::object RegistrantJson(const Registrant& r) {
  json::object o;
  o["id"] = r.id;
  o["state"] = r.state;
  o["external_ref"] = r.external_ref;
  o["host_country"] = r.host_country;
  o["lat"] = r.lat;
  o["lon"] = r.lon;
  o["household_size"] = r.household_size;
  o["languages"] = StringArray(r.languages);
  o["vulnerabilities"] = StringArray(r.vulnerabilities);
  o["created_at"] = FormatRfc3339(r.created_ms);
  o["updated_at"] = FormatRfc3339(r.updated_ms);
  return o;
}

json::object SubscriptionJson(const SubscriptionRecord& s, bool with_secret) {
  json::object o;
  o["id"] = s.id;
  o["state"] = s.state;
  o["url"] = s.url;
  o["host_countries"] = StringArray(s.host_countries);
  o["description"] = s.description;
  o["created_at"] = FormatRfc3339(s.created_ms);
  if (with_secret) o["secret"] = s.secret;
  return o;
}

json::value AlertValue(const StoredAlert& a) {
  boost::system::error_code ec;
  json::value v = json::parse(a.json, ec);
  if (ec || !v.is_object()) v = json::object{{"alert_id", a.alert_id}};  // unreachable: we wrote it
  json::array deliveries;
  for (const auto& d : a.deliveries) {
    deliveries.push_back(
        json::object{{"delivery_id", d.delivery_id}, {"status", d.status}, {"attempts", d.attempts}});
  }
  v.as_object()["deliveries"] = std::move(deliveries);
  return v;
}

// ------------------------------------------------------------ validation

Result<json::object> ParseObject(const std::string& body) {
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 16;
  json::value v = json::parse(body, ec, {}, options);
  if (ec) return InvalidArgument("malformed JSON: " + ec.message(), "");
  if (!v.is_object()) return InvalidArgument("the body must be a JSON object", "");
  return std::move(v.as_object());
}

// The first field of `o` not in `allowed` is an error naming it: nothing
// unexpected (an immigration status, say) can slip into the registry.
Status RejectUnknownFields(const json::object& o, std::initializer_list<std::string_view> allowed) {
  for (const auto& kv : o) {
    if (std::find(allowed.begin(), allowed.end(), kv.key()) == allowed.end()) {
      std::string accepted;
      for (auto a : allowed) accepted += (accepted.empty() ? "" : ", ") + std::string(a);
      return InvalidArgument("unknown field (accepted: " + accepted + ")", std::string(kv.key()));
    }
  }
  return Status::Ok();
}

bool HasControlCharacters(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

Result<std::string> RequiredString(const json::object& o, std::string_view field, size_t max_len) {
  auto it = o.find(field);
  if (it == o.end()) return InvalidArgument("is required", std::string(field));
  if (!it->value().is_string()) return InvalidArgument("must be a string", std::string(field));
  std::string s(it->value().get_string());
  if (s.empty()) return InvalidArgument("must not be empty", std::string(field));
  if (s.size() > max_len) {
    return InvalidArgument("must be at most " + std::to_string(max_len) + " bytes", std::string(field));
  }
  if (HasControlCharacters(s))
    return InvalidArgument("must not contain control characters", std::string(field));
  return s;
}

Result<std::string> RequiredIso3(const json::object& o, std::string_view field) {
  auto s = RequiredString(o, field, 64);
  if (!s.ok()) return s.status();
  if (!IsIso3(*s)) {
    return InvalidArgument("must be an ISO 3166-1 alpha-3 code in uppercase, e.g. PHL", std::string(field));
  }
  return s;
}

Result<double> RequiredNumber(const json::object& o, std::string_view field, double min, double max) {
  auto it = o.find(field);
  if (it == o.end()) return InvalidArgument("is required", std::string(field));
  if (!it->value().is_number()) return InvalidArgument("must be a number", std::string(field));
  double d = it->value().to_number<double>();
  if (!std::isfinite(d) || d < min || d > max) {
    return InvalidArgument("must be within " + ToText(json::value(min)) + ".." + ToText(json::value(max)),
                           std::string(field));
  }
  return d;
}

// BCP-47 shape (RFC 5646): a 2-3 or 5-8 letter primary subtag, then
// alphanumeric subtags of 1-8. Registry-level validity is not checked.
bool IsLanguageTag(std::string_view tag) {
  if (tag.empty() || tag.size() > 35) return false;
  size_t start = 0;
  bool first = true;
  while (start <= tag.size()) {
    size_t dash = tag.find('-', start);
    if (dash == std::string_view::npos) dash = tag.size();
    std::string_view sub = tag.substr(start, dash - start);
    if (sub.empty() || sub.size() > 8) return false;
    for (char c : sub) {
      bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      bool digit = c >= '0' && c <= '9';
      if (first ? !alpha : !(alpha || digit)) return false;
    }
    if (first && (sub.size() == 1 || sub.size() == 4)) return false;
    first = false;
    start = dash + 1;
  }
  return true;
}

Result<std::vector<std::string>> OptionalStringArray(const json::object& o, std::string_view field,
                                                     size_t max_items) {
  std::vector<std::string> out;
  auto it = o.find(field);
  if (it == o.end()) return out;
  if (!it->value().is_array()) return InvalidArgument("must be an array of strings", std::string(field));
  const auto& a = it->value().get_array();
  if (a.size() > max_items) {
    return InvalidArgument("must have at most " + std::to_string(max_items) + " items", std::string(field));
  }
  std::set<std::string> seen;
  for (const auto& item : a) {
    if (!item.is_string()) return InvalidArgument("must be an array of strings", std::string(field));
    std::string s(item.get_string());
    if (!seen.insert(s).second) return InvalidArgument("'" + s + "' is repeated", std::string(field));
    out.push_back(std::move(s));
  }
  return out;
}

Result<Registrant> RegistrantFromJson(const json::object& o, const std::string& state) {
  AMPARO_RETURN_IF_ERROR(RejectUnknownFields(
      o, {"external_ref", "host_country", "lat", "lon", "household_size", "languages", "vulnerabilities"}));
  Registrant r;
  r.state = state;
  auto ref = RequiredString(o, "external_ref", 128);
  if (!ref.ok()) return ref.status();
  r.external_ref = *ref;
  auto host = RequiredIso3(o, "host_country");
  if (!host.ok()) return host.status();
  r.host_country = *host;
  auto lat = RequiredNumber(o, "lat", -90, 90);
  if (!lat.ok()) return lat.status();
  r.lat = *lat;
  auto lon = RequiredNumber(o, "lon", -180, 180);
  if (!lon.ok()) return lon.status();
  r.lon = *lon;
  if (auto it = o.find("household_size"); it != o.end()) {
    const auto& v = it->value();
    if (!(v.is_int64() || v.is_uint64())) return InvalidArgument("must be a whole number", "household_size");
    if (!v.is_int64() || v.get_int64() < 1 || v.get_int64() > 50) {
      return InvalidArgument("must be within 1..50", "household_size");
    }
    r.household_size = static_cast<int>(v.get_int64());
  }
  auto languages = OptionalStringArray(o, "languages", 16);
  if (!languages.ok()) return languages.status();
  for (const auto& tag : *languages) {
    if (!IsLanguageTag(tag))
      return InvalidArgument("'" + tag + "' is not a BCP-47 language tag", "languages");
  }
  r.languages = *languages;
  auto vulnerabilities = OptionalStringArray(o, "vulnerabilities", std::size(kVulnerabilityNames));
  if (!vulnerabilities.ok()) return vulnerabilities.status();
  for (const auto& name : *vulnerabilities) {
    if (auto bit = VulnerabilityBit(name); !bit.ok()) return bit.status();
  }
  r.vulnerabilities = *vulnerabilities;
  return r;
}

Result<SubscriptionRecord> SubscriptionFromJson(const json::object& o, const std::string& state) {
  AMPARO_RETURN_IF_ERROR(RejectUnknownFields(o, {"url", "host_countries", "description"}));
  SubscriptionRecord s;
  s.state = state;
  auto url = RequiredString(o, "url", 2048);
  if (!url.ok()) return url.status();
  auto parsed = urls::parse_absolute_uri(*url);
  if (!parsed || (parsed->scheme_id() != urls::scheme::http && parsed->scheme_id() != urls::scheme::https) ||
      parsed->encoded_host().empty() || parsed->has_userinfo()) {
    return InvalidArgument("must be an absolute http:// or https:// URL with a host and no credentials",
                           "url");
  }
  s.url = *url;
  auto hosts = OptionalStringArray(o, "host_countries", 300);
  if (!hosts.ok()) return hosts.status();
  for (const auto& h : *hosts) {
    if (!IsIso3(h)) return InvalidArgument("'" + h + "' is not an ISO 3166-1 alpha-3 code", "host_countries");
  }
  s.host_countries = *hosts;
  if (auto it = o.find("description"); it != o.end()) {
    if (!it->value().is_string()) return InvalidArgument("must be a string", "description");
    s.description = std::string(it->value().get_string());
    if (s.description.size() > 256) return InvalidArgument("must be at most 256 bytes", "description");
  }
  return s;
}

// ------------------------------------------------------- query parameters

struct Query {
  std::map<std::string, std::string> values;
};

Result<Query> ParseQuery(const urls::url_view& url, std::initializer_list<std::string_view> allowed) {
  Query q;
  for (auto param : url.params()) {
    if (std::find(allowed.begin(), allowed.end(), param.key) == allowed.end()) {
      return InvalidArgument("unknown query parameter", param.key);
    }
    if (!q.values.emplace(param.key, param.value).second) {
      return InvalidArgument("repeated query parameter", param.key);
    }
  }
  return q;
}

Result<int> LimitParam(const Query& q, int default_limit) {
  auto it = q.values.find("limit");
  if (it == q.values.end()) return default_limit;
  int value = 0;
  const std::string& s = it->second;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < 1 || value > 1000) {
    return InvalidArgument("must be a whole number within 1..1000", "limit");
  }
  return value;
}

// ------------------------------------------------------------ auth, roles

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

Status Require(const Token& token, std::initializer_list<Role> roles, std::string_view action) {
  if (std::find(roles.begin(), roles.end(), token.role) != roles.end()) return Status::Ok();
  return {StatusCode::kPermissionDenied,
          "role " + std::string(RoleName(token.role)) + " may not " + std::string(action)};
}

constexpr std::initializer_list<Role> kRegistryWriters = {Role::kRegistrar, Role::kAdmin};
constexpr std::initializer_list<Role> kRegistryReaders = {Role::kRegistrar, Role::kOperator, Role::kAdmin};
constexpr std::initializer_list<Role> kOperators = {Role::kOperator, Role::kAdmin};

HttpResponse MethodNotAllowed(std::string allow) {
  HttpResponse r = ErrorResponse(405, "method_not_allowed", "use " + allow);
  r.headers.emplace_back("Allow", std::move(allow));
  return r;
}

bool IsJsonContentType(std::string_view content_type) {
  if (!StartsWithNoCase(content_type, "application/json")) return false;
  std::string_view rest = content_type.substr(16);
  return rest.empty() || rest.front() == ';' || rest.front() == ' ';
}

// Decoded path segments; "/" has none. A percent-encoded '/' stays inside
// its segment, which is how alert ids travel.
std::vector<std::string> Segments(const urls::url_view& url) {
  std::vector<std::string> out;
  for (auto s : url.segments()) out.push_back(s);
  return out;
}

}  // namespace

// ------------------------------------------------------- public helpers

HttpResponse ErrorResponse(int http_status, std::string_view code, std::string_view message,
                           std::string_view field) {
  json::object error;
  error["code"] = code;
  error["message"] = message;
  error["field"] = field;
  HttpResponse r = JsonResponse(http_status, json::object{{"error", std::move(error)}});
  if (http_status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

HttpResponse StatusResponse(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      return ErrorResponse(400, "invalid_argument", status.message(), status.field());
    case StatusCode::kUnauthenticated:
      return ErrorResponse(401, "unauthenticated", status.message());
    case StatusCode::kPermissionDenied:
      return ErrorResponse(403, "permission_denied", status.message());
    case StatusCode::kNotFound:
      return ErrorResponse(404, "not_found", status.message());
    case StatusCode::kAlreadyExists:
      return ErrorResponse(409, "already_exists", status.message(), status.field());
    case StatusCode::kFailedPrecondition:
      return ErrorResponse(409, "failed_precondition", status.message(), status.field());
    case StatusCode::kResourceExhausted:
      return ErrorResponse(429, "resource_exhausted", status.message());
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded: {
      HttpResponse r = ErrorResponse(503, "unavailable", "the registry is busy; retry shortly");
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    default:
      // Database messages can quote SQL: log them, do not show them.
      log::Error("request failed", {{"error", status.ToString()}});
      return ErrorResponse(500, "internal", "internal error");
  }
}

void GatewayMetrics::CountRequest(std::string_view route, int http_status) {
  std::lock_guard lock(mu_);
  ++requests_[{std::string(route), http_status}];
}

std::string GatewayMetrics::Render(int64_t registrants) const {
  std::string out;
  out += "# HELP amparo_gateway_http_requests_total HTTP requests by route template and status.\n";
  out += "# TYPE amparo_gateway_http_requests_total counter\n";
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, count] : requests_) {
      out += "amparo_gateway_http_requests_total{route=\"" + key.first + "\",status=\"" +
             std::to_string(key.second) + "\"} " + std::to_string(count) + "\n";
    }
  }
  out += "# HELP amparo_gateway_registrants Registrants stored, all states together.\n";
  out += "# TYPE amparo_gateway_registrants gauge\n";
  out += "amparo_gateway_registrants " + std::to_string(registrants) + "\n";
  out +=
      "# HELP amparo_gateway_alerts_received_total Consular alert revisions received from amparo-notify.\n";
  out += "# TYPE amparo_gateway_alerts_received_total counter\n";
  out += "amparo_gateway_alerts_received_total " + std::to_string(alerts_received_.load()) + "\n";
  out += "# HELP amparo_gateway_live_clients Authenticated live-feed WebSocket clients.\n";
  out += "# TYPE amparo_gateway_live_clients gauge\n";
  out += "amparo_gateway_live_clients " + std::to_string(live_clients_.load()) + "\n";
  return out;
}

std::string_view RouteLabel(std::string_view target) {
  auto url = urls::parse_origin_form(target);
  if (!url) return "other";
  std::vector<std::string> s = Segments(*url);
  if (s.empty()) return "/";
  if (s.size() == 1 && s[0] == "healthz") return "/healthz";
  if (s.size() == 1 && s[0] == "metrics") return "/metrics";
  if (s.size() < 3 || s[0] != "api" || s[1] != "v1") return "other";
  const std::string& c = s[2];
  if (s.size() == 3) {
    if (c == "registrants") return "/api/v1/registrants";
    if (c == "subscriptions") return "/api/v1/subscriptions";
    if (c == "alerts") return "/api/v1/alerts";
    if (c == "incidents") return "/api/v1/incidents";
    if (c == "live") return "/api/v1/live";
  } else if (s.size() == 4) {
    if (c == "registrants") return "/api/v1/registrants/{id}";
    if (c == "subscriptions") return "/api/v1/subscriptions/{id}";
    if (c == "alerts") return "/api/v1/alerts/{alert_id}";
  }
  return "other";
}

std::string AlertApiJson(const StoredAlert& alert) { return ToText(AlertValue(alert)); }

std::string LiveAlertFrame(const StoredAlert& alert) {
  return ToText(json::object{{"type", "alert"}, {"alert", AlertValue(alert)}});
}

// ------------------------------------------------------------ GatewayApi

GatewayApi::GatewayApi(Db& db, const Clock& clock, GatewayMetrics& metrics)
    : db_(db), clock_(clock), metrics_(metrics) {}

HttpResponse GatewayApi::Handle(const HttpRequest& request) {
  std::string_view route = "other";
  HttpResponse response;
  try {
    response = Route(request, &route);
  } catch (const std::exception& e) {
    // Boost.JSON/URL throw only on bugs here; never let one escape to Asio.
    response = StatusResponse(Internal(e.what()));
  }
  if (response.content_type == "application/json") response.headers.emplace_back("Cache-Control", "no-store");
  metrics_.CountRequest(route, response.status);
  return response;
}

Result<Token> GatewayApi::AuthenticateLive(std::string_view first_message) {
  boost::system::error_code ec;
  json::value v = json::parse(first_message, ec);
  if (ec || !v.is_object() || !v.as_object().contains("token") || !v.as_object().at("token").is_string()) {
    return InvalidArgument("the first message must be {\"token\": \"...\"}", "token");
  }
  auto token = Authenticate(db_, std::string(v.as_object().at("token").get_string()));
  if (!token.ok()) return token.status();
  AMPARO_RETURN_IF_ERROR(Require(*token, kOperators, "watch live alerts"));
  return token;
}

HttpResponse GatewayApi::Route(const HttpRequest& req, std::string_view* route) {
  *route = RouteLabel(req.target);
  auto url = urls::parse_origin_form(req.target);
  if (!url) return ErrorResponse(400, "invalid_argument", "malformed request target");
  const std::vector<std::string> seg = Segments(*url);
  const std::string& method = req.method;

  if (seg.empty()) {
    if (method != "GET") return MethodNotAllowed("GET");
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(ConsoleHtml());
    // The page is self-contained: forbid everything it does not need.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    return r;
  }
  if (seg.size() == 1 && seg[0] == "healthz") {
    if (method != "GET") return MethodNotAllowed("GET");
    return JsonResponse(200, json::object{{"status", "ok"}});
  }
  if (seg.size() == 1 && seg[0] == "metrics") {
    if (method != "GET") return MethodNotAllowed("GET");
    auto count = CountRegistrants(db_);
    if (!count.ok()) return StatusResponse(count.status());
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_.Render(*count);
    return r;
  }
  if (seg.size() < 2 || seg[0] != "api" || seg[1] != "v1") {
    return ErrorResponse(404, "not_found", "no such route");
  }

  // Everything under /api/v1/ needs a bearer token, even to learn a route
  // does not exist.
  if (req.authorization.empty()) {
    return ErrorResponse(401, "unauthenticated", "missing Authorization: Bearer <token>");
  }
  if (!StartsWithNoCase(req.authorization, "Bearer ")) {
    return ErrorResponse(401, "unauthenticated", "the Authorization scheme must be Bearer");
  }
  std::string_view bearer = std::string_view(req.authorization).substr(7);
  while (!bearer.empty() && bearer.front() == ' ') bearer.remove_prefix(1);
  auto token = Authenticate(db_, bearer);
  if (!token.ok()) return StatusResponse(token.status());
  const std::string& state = token->state;

  if (seg.size() < 3 || seg.size() > 4) return ErrorResponse(404, "not_found", "no such route");
  const std::string& collection = seg[2];
  const bool item = seg.size() == 4;
  const std::string id = item ? seg[3] : std::string();

  auto need_json_body = [&]() -> std::optional<HttpResponse> {
    if (!IsJsonContentType(req.content_type)) {
      return ErrorResponse(415, "unsupported_media_type", "send Content-Type: application/json");
    }
    return std::nullopt;
  };

  if (collection == "registrants") {
    if (!item && method == "POST") {
      if (Status st = Require(*token, kRegistryWriters, "create registrants"); !st.ok())
        return StatusResponse(st);
      if (auto bad = need_json_body()) return *bad;
      auto body = ParseObject(req.body);
      if (!body.ok()) return StatusResponse(body.status());
      auto registrant = RegistrantFromJson(*body, state);
      if (!registrant.ok()) return StatusResponse(registrant.status());
      auto stored = InsertRegistrant(db_, std::move(registrant).value(), clock_);
      if (!stored.ok()) return StatusResponse(stored.status());
      HttpResponse r = JsonResponse(201, RegistrantJson(*stored));
      r.headers.emplace_back("Location", "/api/v1/registrants/" + stored->id);
      return r;
    }
    if (!item && method == "GET") {
      if (Status st = Require(*token, kRegistryReaders, "read registrants"); !st.ok())
        return StatusResponse(st);
      auto q = ParseQuery(*url, {"host_country", "limit", "cursor"});
      if (!q.ok()) return StatusResponse(q.status());
      auto limit = LimitParam(*q, 100);
      if (!limit.ok()) return StatusResponse(limit.status());
      std::string host = q->values.count("host_country") ? q->values["host_country"] : "";
      if (q->values.count("host_country") && !IsIso3(host)) {
        return ErrorResponse(400, "invalid_argument", "must be an ISO 3166-1 alpha-3 code", "host_country");
      }
      std::string cursor = q->values.count("cursor") ? q->values["cursor"] : "";
      auto page = ListRegistrants(db_, state, host, cursor, *limit);
      if (!page.ok()) return StatusResponse(page.status());
      json::array items;
      for (const auto& r : page->items) items.push_back(RegistrantJson(r));
      return JsonResponse(
          200, json::object{{"items", std::move(items)},
                            {"next_cursor",
                             page->next_cursor ? json::value(*page->next_cursor) : json::value(nullptr)}});
    }
    if (item && method == "GET") {
      if (Status st = Require(*token, kRegistryReaders, "read registrants"); !st.ok())
        return StatusResponse(st);
      auto r = GetRegistrant(db_, state, id);
      if (!r.ok()) return StatusResponse(r.status());
      return JsonResponse(200, RegistrantJson(*r));
    }
    if (item && method == "DELETE") {
      if (Status st = Require(*token, kRegistryWriters, "delete registrants"); !st.ok())
        return StatusResponse(st);
      if (Status st = DeleteRegistrant(db_, state, id, clock_); !st.ok()) return StatusResponse(st);
      HttpResponse r;
      r.status = 204;
      return r;
    }
    return MethodNotAllowed(item ? "GET, DELETE" : "GET, POST");
  }

  if (collection == "subscriptions") {
    if (Status st = Require(*token, kOperators, "manage subscriptions"); !st.ok()) return StatusResponse(st);
    if (!item && method == "POST") {
      if (auto bad = need_json_body()) return *bad;
      auto body = ParseObject(req.body);
      if (!body.ok()) return StatusResponse(body.status());
      auto subscription = SubscriptionFromJson(*body, state);
      if (!subscription.ok()) return StatusResponse(subscription.status());
      auto stored = CreateSubscription(db_, std::move(subscription).value(), clock_);
      if (!stored.ok()) return StatusResponse(stored.status());
      HttpResponse r = JsonResponse(201, SubscriptionJson(*stored, /*with_secret=*/true));
      r.headers.emplace_back("Location", "/api/v1/subscriptions/" + stored->id);
      return r;
    }
    if (!item && method == "GET") {
      auto list = ListSubscriptions(db_, state);
      if (!list.ok()) return StatusResponse(list.status());
      json::array items;
      for (const auto& s : *list) items.push_back(SubscriptionJson(s, /*with_secret=*/false));
      return JsonResponse(200, json::object{{"items", std::move(items)}});
    }
    if (item && method == "GET") {
      auto s = GetSubscription(db_, state, id);
      if (!s.ok()) return StatusResponse(s.status());
      return JsonResponse(200, SubscriptionJson(*s, /*with_secret=*/false));
    }
    if (item && method == "DELETE") {
      if (Status st = DeleteSubscription(db_, state, id, clock_); !st.ok()) return StatusResponse(st);
      HttpResponse r;
      r.status = 204;
      return r;
    }
    return MethodNotAllowed(item ? "GET, DELETE" : "GET, POST");
  }

  if (collection == "alerts") {
    if (method != "GET") return MethodNotAllowed("GET");
    if (Status st = Require(*token, kOperators, "read alerts"); !st.ok()) return StatusResponse(st);
    if (item) {
      auto a = GetAlert(db_, state, id);
      if (!a.ok()) return StatusResponse(a.status());
      return JsonResponse(200, AlertValue(*a));
    }
    auto q = ParseQuery(*url, {"limit"});
    if (!q.ok()) return StatusResponse(q.status());
    auto limit = LimitParam(*q, 100);
    if (!limit.ok()) return StatusResponse(limit.status());
    auto alerts = ListAlerts(db_, state, *limit);
    if (!alerts.ok()) return StatusResponse(alerts.status());
    json::array items;
    for (const auto& a : *alerts) items.push_back(AlertValue(a));
    return JsonResponse(200, json::object{{"items", std::move(items)}});
  }

  if (collection == "incidents" && !item) {
    if (method != "GET") return MethodNotAllowed("GET");
    if (Status st = Require(*token, kOperators, "read incidents"); !st.ok()) return StatusResponse(st);
    auto q = ParseQuery(*url, {"limit"});
    if (!q.ok()) return StatusResponse(q.status());
    auto limit = LimitParam(*q, 100);
    if (!limit.ok()) return StatusResponse(limit.status());
    auto incidents = ListIncidents(db_, state, *limit);
    if (!incidents.ok()) return StatusResponse(incidents.status());
    json::array items;
    for (const auto& incident : *incidents) {
      json::array alerts;
      for (const auto& a : incident.alerts) alerts.push_back(AlertValue(a));
      // Hazard and headline come from the newest alert of the incident.
      const json::object& newest = alerts.front().as_object();
      json::object o;
      o["incident_id"] = incident.incident_id;
      o["hazard"] = newest.contains("hazard") ? newest.at("hazard") : json::value("unspecified");
      o["headline"] = newest.contains("headline") ? newest.at("headline") : json::value("");
      o["alerts"] = std::move(alerts);
      items.push_back(std::move(o));
    }
    return JsonResponse(200, json::object{{"items", std::move(items)}});
  }

  if (collection == "live" && !item) {
    // Reached only when the request was not a WebSocket upgrade.
    return ErrorResponse(426, "upgrade_required", "connect with a WebSocket");
  }
  return ErrorResponse(404, "not_found", "no such route");
}

}  // namespace amparo::gateway
