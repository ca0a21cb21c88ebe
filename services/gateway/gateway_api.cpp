#include "services/gateway/gateway_api.h"

#include <boost/json.hpp>
#include <boost/url.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <set>
#include <sstream>

#include "common/crypto.h"
#include "common/json_text.h"
#include "common/log.h"
#include "services/gateway/console_html.h"
#include "services/gateway/import_export.h"
#include "services/gateway/json_fields.h"
#include "services/gateway/operator_actions.h"
#include "services/gateway/operator_events.h"
#include "services/gateway/registrant_json.h"

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
  // The silence's reason lives in the gateway, not in the alert: operators
  // see why an alert was not pushed. Absent when the revision is not
  // silenced (or names a silence this state does not have).
  if (!a.silence_id.empty()) {
    v.as_object()["silence"] = json::object{
        {"silence_id", a.silence_id},
        {"reason", a.silence_reason},
        {"ends_at", FormatRfc3339(a.silence_ends_ms)},
        {"lifted_at", a.silence_lifted_ms ? json::value(FormatRfc3339(a.silence_lifted_ms)) : json::value()}};
  }
  return v;
}

// ------------------------------------------------------------ validation

Result<std::string> RequiredString(const json::object& o, std::string_view field, size_t max_len) {
  auto it = o.find(field);
  if (it == o.end()) return InvalidArgument("is required", std::string(field));
  if (!it->value().is_string()) return InvalidArgument("must be a string", std::string(field));
  std::string s(it->value().get_string());
  if (s.empty()) return InvalidArgument("must not be empty", std::string(field));
  if (s.size() > max_len) {
    return InvalidArgument("must be at most " + std::to_string(max_len) + " bytes", std::string(field));
  }
  return s;
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
    std::string v(item.get_string());
    if (!seen.insert(v).second) return InvalidArgument("'" + v + "' is repeated", std::string(field));
    out.push_back(std::move(v));
  }
  return out;
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

namespace {

// AlertValue() written as text: the stored JSON (AlertToJson(), already
// canonical) is copied, not parsed and printed again, which cost a parse and
// a print of up to ~36 KB (1,000 registrant ids) per alert revision on the
// link thread. Same keys, same order, same bytes as the DOM: AlertToJson()
// has no "deliveries" or "silence" key, so the DOM appended them at the end.
void AppendAlertApiJson(const StoredAlert& a, std::string& out) {
  const std::string_view stored = a.json;
  if (stored.size() < 2 || stored.front() != '{' || stored.back() != '}') {
    out += ToText(AlertValue(a));  // unreachable: we wrote it; the DOM path copes
    return;
  }
  out.append(stored.substr(0, stored.size() - 1));
  if (stored.size() > 2) out += ',';
  out += "\"deliveries\":[";
  for (size_t i = 0; i < a.deliveries.size(); ++i) {
    const DeliverySummary& d = a.deliveries[i];
    if (i > 0) out += ',';
    out += "{\"delivery_id\":";
    AppendJsonString(out, d.delivery_id);
    out += ",\"status\":";
    AppendJsonString(out, d.status);
    out += ",\"attempts\":";
    out += std::to_string(d.attempts);
    out += '}';
  }
  out += ']';
  if (!a.silence_id.empty()) {
    out += ",\"silence\":{\"silence_id\":";
    AppendJsonString(out, a.silence_id);
    out += ",\"reason\":";
    AppendJsonString(out, a.silence_reason);
    out += ",\"ends_at\":";
    AppendJsonString(out, FormatRfc3339(a.silence_ends_ms));
    out += ",\"lifted_at\":";
    if (a.silence_lifted_ms) {
      AppendJsonString(out, FormatRfc3339(a.silence_lifted_ms));
    } else {
      out += "null";
    }
    out += '}';
  }
  out += '}';
}

}  // namespace

std::string AlertApiJson(const StoredAlert& alert) {
  std::string out;
  AppendAlertApiJson(alert, out);
  return out;
}

std::string LiveAlertFrame(const StoredAlert& alert) {
  constexpr std::string_view kHead = R"({"type":"alert","alert":)";
  std::string frame;
  frame.reserve(kHead.size() + alert.json.size() + 64 * alert.deliveries.size() + 256);
  frame += kHead;
  AppendAlertApiJson(alert, frame);
  frame += '}';
  return frame;
}

// ----------------------------------------------------------------- routes

namespace {

constexpr Role kRegistrar = Role::kRegistrar;
constexpr Role kOperator = Role::kOperator;
constexpr Role kAdmin = Role::kAdmin;

// What a route handler gets: the request, its parsed URL, the path
// parameter ({id}), the caller and the services.
struct Call {
  const HttpRequest& request;
  const urls::url_view& url;
  const std::string& param;  // the {id} / {alert_id} segment, "" when none
  const Token& token;
  const Access& access;
  Db& db;
  const Clock& clock;
  GatewayMetrics& metrics;
  const RegistryKeys& keys;
  const Gazetteer* gazetteer;
  const GatewayApiOptions& options;
};

using RouteHandler = HttpResponse (*)(const Call&);

struct RouteEntry {
  RouteInfo info;
  RouteHandler handler;
};

HttpResponse NoContent() {
  HttpResponse r;
  r.status = 204;
  return r;
}

// Personal data (names, contact channels) only for those who maintain the
// registry; operators see where people are, not how to reach them.
bool SeesPersonalData(const Token& token) { return token.role == kRegistrar || token.role == kAdmin; }

RegistrantValidation ValidationFor(const Call& c) {
  RegistrantValidation v;
  v.gazetteer = c.gazetteer;
  v.retention_days = c.options.retention_days;
  v.clock = &c.clock;
  return v;
}

std::optional<HttpResponse> NeedJsonBody(const HttpRequest& req) {
  if (!IsJsonContentType(req.content_type) &&
      !StartsWithNoCase(req.content_type, "application/merge-patch+json")) {
    return ErrorResponse(415, "unsupported_media_type", "send Content-Type: application/json");
  }
  return std::nullopt;
}

HttpResponse ConsolePage(const Call&) {
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

HttpResponse Healthz(const Call&) { return JsonResponse(200, json::object{{"status", "ok"}}); }

HttpResponse Metrics(const Call& c) {
  auto count = CountRegistrants(c.db);
  if (!count.ok()) return StatusResponse(count.status());
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = c.metrics.Render(*count);
  return r;
}

HttpResponse CreateRegistrantRoute(const Call& c) {
  if (auto bad = NeedJsonBody(c.request)) return *bad;
  auto body = ParseJsonObject(c.request.body);
  if (!body.ok()) return StatusResponse(body.status());
  auto registrant = RegistrantFromJson(*body, c.token.state, ValidationFor(c));
  if (!registrant.ok()) return StatusResponse(registrant.status());
  auto stored = InsertRegistrant(c.db, std::move(registrant).value(), c.keys, c.access, c.clock);
  if (!stored.ok()) return StatusResponse(stored.status());
  HttpResponse r = JsonResponse(201, RegistrantToJson(*stored, /*with_personal=*/true));
  r.headers.emplace_back("Location", "/api/v1/registrants/" + stored->id);
  return r;
}

HttpResponse ListRegistrantsRoute(const Call& c) {
  auto q = ParseQuery(c.url, {"host_country", "admin1", "flag", "limit", "cursor"});
  if (!q.ok()) return StatusResponse(q.status());
  auto limit = LimitParam(*q, 100);
  if (!limit.ok()) return StatusResponse(limit.status());
  RegistrantFilter filter;
  filter.host_country = q->values.count("host_country") ? q->values["host_country"] : "";
  if (q->values.count("host_country") && !IsIso3(filter.host_country)) {
    return ErrorResponse(400, "invalid_argument", "must be an ISO 3166-1 alpha-3 code", "host_country");
  }
  filter.admin1 = q->values.count("admin1") ? q->values["admin1"] : "";
  if (filter.admin1.size() > 64)
    return ErrorResponse(400, "invalid_argument", "must be at most 64 bytes", "admin1");
  filter.vulnerability = q->values.count("flag") ? q->values["flag"] : "";
  if (q->values.count("flag") && !VulnerabilityBit(filter.vulnerability).ok()) {
    return ErrorResponse(400, "invalid_argument", "unknown vulnerability '" + filter.vulnerability + "'",
                         "flag");
  }
  std::string cursor = q->values.count("cursor") ? q->values["cursor"] : "";
  const bool personal = SeesPersonalData(c.token);
  auto page = ListRegistrants(c.db, c.token.state, filter, cursor, *limit, personal ? &c.keys : nullptr,
                              c.access, c.clock);
  if (!page.ok()) return StatusResponse(page.status());
  json::array items;
  for (const auto& r : page->items) items.push_back(RegistrantToJson(r, personal));
  return JsonResponse(200, json::object{{"items", std::move(items)},
                                        {"next_cursor", page->next_cursor ? json::value(*page->next_cursor)
                                                                          : json::value(nullptr)}});
}

HttpResponse GetRegistrantRoute(const Call& c) {
  const bool personal = SeesPersonalData(c.token);
  auto r = GetRegistrant(c.db, c.token.state, c.param, personal ? &c.keys : nullptr, c.access, c.clock);
  if (!r.ok()) return StatusResponse(r.status());
  return JsonResponse(200, RegistrantToJson(*r, personal));
}

HttpResponse PatchRegistrantRoute(const Call& c) {
  if (auto bad = NeedJsonBody(c.request)) return *bad;
  auto patch = ParseJsonObject(c.request.body);
  if (!patch.ok()) return StatusResponse(patch.status());
  const RegistrantValidation validation = ValidationFor(c);
  auto updated = UpdateRegistrant(
      c.db, c.token.state, c.param,
      [&](const Registrant& current) { return ApplyRegistrantPatch(current, *patch, validation); }, c.keys,
      c.access, c.clock);
  if (!updated.ok()) return StatusResponse(updated.status());
  return JsonResponse(200, RegistrantToJson(*updated, /*with_personal=*/true));
}

HttpResponse DeleteRegistrantRoute(const Call& c) {
  if (Status st = DeleteRegistrant(c.db, c.token.state, c.param, c.access, c.clock); !st.ok()) {
    return StatusResponse(st);
  }
  return NoContent();
}

Result<RegistryFormat> FormatParam(const urls::url_view& url) {
  auto q = ParseQuery(url, {"format"});
  if (!q.ok()) return q.status();
  if (!q->values.count("format")) return InvalidArgument("is required: csv or ndjson", "format");
  return ParseRegistryFormat(q->values["format"]);
}

HttpResponse ExportRegistrantsRoute(const Call& c) {
  auto format = FormatParam(c.url);
  if (!format.ok()) return StatusResponse(format.status());
  HttpResponse r;
  r.content_type = std::string(RegistryFormatContentType(*format));
  r.headers.emplace_back("Content-Disposition",
                         "attachment; filename=\"registrants-" + c.token.state +
                             (*format == RegistryFormat::kCsv ? ".csv\"" : ".ndjson\""));
  r.headers.emplace_back("Cache-Control", "no-store");
  if (c.options.spool_dir.empty()) {
    std::ostringstream out;
    auto rows = ExportRegistrants(c.db, c.token, out, *format, c.keys, c.clock, c.access.purpose);
    if (!rows.ok()) return StatusResponse(rows.status());
    r.body = out.str();
    return r;
  }
  // Written to a spool file first: memory stays bounded and the database
  // transaction is short, whatever the size and the client's speed.
  std::filesystem::path file = c.options.spool_dir / ("export-" + NewId() + ".tmp");
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    auto rows = ExportRegistrants(c.db, c.token, out, *format, c.keys, c.clock, c.access.purpose);
    out.flush();
    if (!rows.ok() || !out) {
      std::error_code ec;
      std::filesystem::remove(file, ec);
      return StatusResponse(rows.ok() ? Unavailable("cannot write the export spool file") : rows.status());
    }
  }
  r.body_file = file;
  return r;
}

HttpResponse ImportRegistrantsRoute(const Call& c) {
  auto format = FormatParam(c.url);
  if (!format.ok()) return StatusResponse(format.status());
  ImportOptions options;
  options.gazetteer = c.gazetteer;
  options.retention_days = c.options.retention_days;
  options.batch_rows = c.options.import_batch_rows;
  options.purpose = c.access.purpose;
  options.source = "upload";
  Result<ImportReport> report = Status::Ok();
  if (!c.request.body_file.empty()) {
    std::ifstream in(c.request.body_file, std::ios::binary);
    if (!in) return StatusResponse(Unavailable("cannot read the uploaded body"));
    report = ImportRegistrants(c.db, c.token, in, *format, c.keys, c.clock, options);
  } else {
    std::istringstream in(c.request.body);
    report = ImportRegistrants(c.db, c.token, in, *format, c.keys, c.clock, options);
  }
  if (!report.ok()) return StatusResponse(report.status());
  json::array errors;
  for (const auto& e : report->errors) {
    errors.push_back(json::object{{"row", e.row}, {"field", e.field}, {"reason", e.reason}});
  }
  return JsonResponse(200, json::object{{"imported", report->imported},
                                        {"rejected", report->rejected},
                                        {"errors", std::move(errors)}});
}

HttpResponse CreateSubscriptionRoute(const Call& c) {
  if (auto bad = NeedJsonBody(c.request)) return *bad;
  auto body = ParseJsonObject(c.request.body);
  if (!body.ok()) return StatusResponse(body.status());
  auto subscription = SubscriptionFromJson(*body, c.token.state);
  if (!subscription.ok()) return StatusResponse(subscription.status());
  auto stored = CreateSubscription(c.db, std::move(subscription).value(), c.clock);
  if (!stored.ok()) return StatusResponse(stored.status());
  HttpResponse r = JsonResponse(201, SubscriptionJson(*stored, /*with_secret=*/true));
  r.headers.emplace_back("Location", "/api/v1/subscriptions/" + stored->id);
  return r;
}

HttpResponse ListSubscriptionsRoute(const Call& c) {
  auto list = ListSubscriptions(c.db, c.token.state);
  if (!list.ok()) return StatusResponse(list.status());
  json::array items;
  for (const auto& s : *list) items.push_back(SubscriptionJson(s, /*with_secret=*/false));
  return JsonResponse(200, json::object{{"items", std::move(items)}});
}

HttpResponse GetSubscriptionRoute(const Call& c) {
  auto s = GetSubscription(c.db, c.token.state, c.param);
  if (!s.ok()) return StatusResponse(s.status());
  return JsonResponse(200, SubscriptionJson(*s, /*with_secret=*/false));
}

HttpResponse DeleteSubscriptionRoute(const Call& c) {
  if (Status st = DeleteSubscription(c.db, c.token.state, c.param, c.clock); !st.ok())
    return StatusResponse(st);
  return NoContent();
}

HttpResponse ListAlertsRoute(const Call& c) {
  auto q = ParseQuery(c.url, {"limit"});
  if (!q.ok()) return StatusResponse(q.status());
  auto limit = LimitParam(*q, 100);
  if (!limit.ok()) return StatusResponse(limit.status());
  auto alerts = ListAlerts(c.db, c.token.state, *limit);
  if (!alerts.ok()) return StatusResponse(alerts.status());
  json::array items;
  for (const auto& a : *alerts) items.push_back(AlertValue(a));
  return JsonResponse(200, json::object{{"items", std::move(items)}});
}

HttpResponse GetAlertRoute(const Call& c) {
  auto a = GetAlert(c.db, c.token.state, c.param);
  if (!a.ok()) return StatusResponse(a.status());
  return JsonResponse(200, AlertValue(*a));
}

HttpResponse ListIncidentsRoute(const Call& c) {
  auto q = ParseQuery(c.url, {"limit"});
  if (!q.ok()) return StatusResponse(q.status());
  auto limit = LimitParam(*q, 100);
  if (!limit.ok()) return StatusResponse(limit.status());
  auto incidents = ListIncidents(c.db, c.token.state, *limit);
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

// Operator-entered events (operator_events.h). Audited with the caller's
// X-Amparo-Purpose, "crisis-response" when none is given.
Access EventAccess(const Call& c) {
  Access access = c.access;
  if (c.request.purpose.empty()) access.purpose = "crisis-response";
  return access;
}

HttpResponse EventAccepted(const OperatorEvent& event) {
  HttpResponse r = JsonResponse(202, json::object{{"event_id", event.event_id()}, {"revision", event.revision}});
  r.headers.emplace_back("Location", "/api/v1/events/" + event.event_id());
  return r;
}

HttpResponse CreateEventRoute(const Call& c) {
  if (auto bad = NeedJsonBody(c.request)) return *bad;
  auto body = ParseJsonObject(c.request.body);
  if (!body.ok()) return StatusResponse(body.status());
  auto spec = ValidateOperatorEvent(*body, c.clock.NowMs());
  if (!spec.ok()) return StatusResponse(spec.status());
  auto event = CreateOperatorEvent(c.db, c.token.state, std::move(spec).value(), EventAccess(c), c.clock);
  if (!event.ok()) return StatusResponse(event.status());
  return EventAccepted(*event);
}

HttpResponse ListEventsRoute(const Call& c) {
  auto q = ParseQuery(c.url, {"limit", "cursor"});
  if (!q.ok()) return StatusResponse(q.status());
  auto limit = LimitParam(*q, 100);
  if (!limit.ok()) return StatusResponse(limit.status());
  const std::string cursor = q->values.count("cursor") ? q->values["cursor"] : "";
  auto page = ListOperatorEvents(c.db, c.token.state, cursor, *limit, EventAccess(c), c.clock);
  if (!page.ok()) return StatusResponse(page.status());
  json::array items;
  for (const auto& e : page->items) items.push_back(OperatorEventToJson(e));
  return JsonResponse(200, json::object{{"items", std::move(items)},
                                        {"next_cursor", page->next_cursor ? json::value(*page->next_cursor)
                                                                          : json::value(nullptr)}});
}

HttpResponse GetEventRoute(const Call& c) {
  auto event = GetOperatorEvent(c.db, c.token.state, c.param, EventAccess(c), c.clock);
  if (!event.ok()) return StatusResponse(event.status());
  return JsonResponse(200, OperatorEventToJson(*event));
}

HttpResponse PatchEventRoute(const Call& c) {
  if (auto bad = NeedJsonBody(c.request)) return *bad;
  auto patch = ParseJsonObject(c.request.body);
  if (!patch.ok()) return StatusResponse(patch.status());
  auto event = UpdateOperatorEvent(c.db, c.token.state, c.param, *patch, EventAccess(c), c.clock);
  if (!event.ok()) return StatusResponse(event.status());
  return EventAccepted(*event);
}

HttpResponse CancelEventRoute(const Call& c) {
  auto event = CancelOperatorEvent(c.db, c.token.state, c.param, EventAccess(c), c.clock);
  if (!event.ok()) return StatusResponse(event.status());
  return EventAccepted(*event);
}

// Operator actions (operator_actions.h) are audited as crisis response
// unless the caller states another purpose.
Access ActionAccess(const Call& c) {
  Access access = c.access;
  if (c.request.purpose.empty()) access.purpose = "crisis-response";
  return access;
}

HttpResponse CreateSilenceRoute(const Call& c) {
  if (auto bad = NeedJsonBody(c.request)) return *bad;
  auto body = ParseJsonObject(c.request.body);
  if (!body.ok()) return StatusResponse(body.status());
  auto silence = SilenceFromJson(*body, c.token.state, c.token.id, c.clock);
  if (!silence.ok()) return StatusResponse(silence.status());
  auto stored = CreateSilence(c.db, std::move(silence).value(), ActionAccess(c), c.clock);
  if (!stored.ok()) return StatusResponse(stored.status());
  HttpResponse r = JsonResponse(201, SilenceToJson(*stored, c.clock.NowMs()));
  r.headers.emplace_back("Location", "/api/v1/silences/" + stored->id);
  return r;
}

HttpResponse ListSilencesRoute(const Call& c) {
  auto q = ParseQuery(c.url, {"limit"});
  if (!q.ok()) return StatusResponse(q.status());
  auto limit = LimitParam(*q, 100);
  if (!limit.ok()) return StatusResponse(limit.status());
  auto list = ListSilences(c.db, c.token.state, *limit, ActionAccess(c), c.clock);
  if (!list.ok()) return StatusResponse(list.status());
  json::array items;
  const int64_t now_ms = c.clock.NowMs();
  for (const auto& s : *list) items.push_back(SilenceToJson(s, now_ms));
  return JsonResponse(200, json::object{{"items", std::move(items)}});
}

HttpResponse GetSilenceRoute(const Call& c) {
  auto s = GetSilence(c.db, c.token.state, c.param, ActionAccess(c), c.clock);
  if (!s.ok()) return StatusResponse(s.status());
  return JsonResponse(200, SilenceToJson(*s, c.clock.NowMs()));
}

HttpResponse LiftSilenceRoute(const Call& c) {
  auto q = ParseQuery(c.url, {"reason"});
  if (!q.ok()) return StatusResponse(q.status());
  const std::string reason = q->values.count("reason") ? q->values["reason"] : "";
  auto s = LiftSilence(c.db, c.token.state, c.param, reason, ActionAccess(c), c.clock);
  if (!s.ok()) return StatusResponse(s.status());
  return JsonResponse(200, SilenceToJson(*s, c.clock.NowMs()));
}

HttpResponse CreateDecisionRoute(const Call& c) {
  if (auto bad = NeedJsonBody(c.request)) return *bad;
  auto body = ParseJsonObject(c.request.body);
  if (!body.ok()) return StatusResponse(body.status());
  auto decision = DecisionFromJson(*body);
  if (!decision.ok()) return StatusResponse(decision.status());
  auto stored =
      RecordDecision(c.db, c.token.state, c.param, std::move(decision).value(), ActionAccess(c), c.clock);
  if (!stored.ok()) return StatusResponse(stored.status());
  // Accepted: amparo-rules applies it to the alert's next revision.
  return JsonResponse(202, DecisionToJson(*stored));
}

HttpResponse ListDecisionsRoute(const Call& c) {
  auto list = ListDecisions(c.db, c.token.state, c.param, ActionAccess(c), c.clock);
  if (!list.ok()) return StatusResponse(list.status());
  json::array items;
  for (const auto& d : *list) items.push_back(DecisionToJson(d));
  return JsonResponse(200, json::object{{"items", std::move(items)}});
}

HttpResponse LiveRoute(const Call&) {
  // Reached only when the request was not a WebSocket upgrade.
  return ErrorResponse(426, "upgrade_required", "connect with a WebSocket");
}

// THE route table: the router, RouteLabel(), IsUploadRoute() and the
// tenant-isolation test all read it. A new endpoint is a new row here.
const std::vector<RouteEntry>& RouteTable() {
  static const auto* kTable = new std::vector<RouteEntry>{
      {{"GET", "/", false, {}, false}, ConsolePage},
      {{"GET", "/healthz", false, {}, false}, Healthz},
      {{"GET", "/metrics", false, {}, false}, Metrics},
      {{"POST", "/api/v1/registrants", true, {kRegistrar, kAdmin}, false}, CreateRegistrantRoute},
      {{"GET", "/api/v1/registrants", true, {kRegistrar, kOperator, kAdmin}, false}, ListRegistrantsRoute},
      {{"GET", "/api/v1/registrants/{id}", true, {kRegistrar, kOperator, kAdmin}, false}, GetRegistrantRoute},
      {{"PATCH", "/api/v1/registrants/{id}", true, {kRegistrar, kAdmin}, false}, PatchRegistrantRoute},
      {{"DELETE", "/api/v1/registrants/{id}", true, {kRegistrar, kAdmin}, false}, DeleteRegistrantRoute},
      {{"GET", "/api/v1/registrants:export", true, {kRegistrar, kAdmin}, false}, ExportRegistrantsRoute},
      {{"POST", "/api/v1/registrants:import", true, {kRegistrar, kAdmin}, true}, ImportRegistrantsRoute},
      {{"POST", "/api/v1/subscriptions", true, {kOperator, kAdmin}, false}, CreateSubscriptionRoute},
      {{"GET", "/api/v1/subscriptions", true, {kOperator, kAdmin}, false}, ListSubscriptionsRoute},
      {{"GET", "/api/v1/subscriptions/{id}", true, {kOperator, kAdmin}, false}, GetSubscriptionRoute},
      {{"DELETE", "/api/v1/subscriptions/{id}", true, {kOperator, kAdmin}, false}, DeleteSubscriptionRoute},
      {{"GET", "/api/v1/alerts", true, {kOperator, kAdmin}, false}, ListAlertsRoute},
      {{"GET", "/api/v1/alerts/{alert_id}", true, {kOperator, kAdmin}, false}, GetAlertRoute},
      {{"GET", "/api/v1/incidents", true, {kOperator, kAdmin}, false}, ListIncidentsRoute},
      {{"GET", "/api/v1/live", true, {kOperator, kAdmin}, false}, LiveRoute},
      {{"POST", "/api/v1/silences", true, {kOperator, kAdmin}, false}, CreateSilenceRoute},
      {{"GET", "/api/v1/silences", true, {kOperator, kAdmin}, false}, ListSilencesRoute},
      {{"GET", "/api/v1/silences/{id}", true, {kOperator, kAdmin}, false}, GetSilenceRoute},
      {{"DELETE", "/api/v1/silences/{id}", true, {kOperator, kAdmin}, false}, LiftSilenceRoute},
      {{"POST", "/api/v1/alerts/{alert_id}/decisions", true, {kOperator, kAdmin}, false},
       CreateDecisionRoute},
      {{"GET", "/api/v1/alerts/{alert_id}/decisions", true, {kOperator, kAdmin}, false}, ListDecisionsRoute},
      {{"POST", "/api/v1/events", true, {kOperator, kAdmin}, false}, CreateEventRoute},
      {{"GET", "/api/v1/events", true, {kOperator, kAdmin}, false}, ListEventsRoute},
      {{"GET", "/api/v1/events/{id}", true, {kOperator, kAdmin}, false}, GetEventRoute},
      {{"PATCH", "/api/v1/events/{id}", true, {kOperator, kAdmin}, false}, PatchEventRoute},
      {{"DELETE", "/api/v1/events/{id}", true, {kOperator, kAdmin}, false}, CancelEventRoute},
  };
  return *kTable;
}

// Splits a template into segments once per call; the table is small.
bool PathMatches(std::string_view path_template, const std::vector<std::string>& segments,
                 std::string* param) {
  std::vector<std::string_view> parts;
  size_t start = 1;
  while (start < path_template.size()) {
    size_t slash = path_template.find('/', start);
    if (slash == std::string_view::npos) slash = path_template.size();
    parts.push_back(path_template.substr(start, slash - start));
    start = slash + 1;
  }
  if (parts.size() != segments.size()) return false;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].size() > 2 && parts[i].front() == '{') {
      if (segments[i].empty()) return false;
      if (param != nullptr) *param = segments[i];
    } else if (parts[i] != segments[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

const std::vector<RouteInfo>& GatewayRoutes() {
  static const auto* kRoutes = [] {
    auto* routes = new std::vector<RouteInfo>;
    for (const auto& e : RouteTable()) routes->push_back(e.info);
    return routes;
  }();
  return *kRoutes;
}

std::string_view RouteLabel(std::string_view target) {
  auto url = urls::parse_origin_form(target);
  if (!url) return "other";
  const std::vector<std::string> s = Segments(*url);
  for (const auto& e : RouteTable()) {
    if (PathMatches(e.info.path, s, nullptr)) return e.info.path;
  }
  return "other";
}

bool IsUploadRoute(std::string_view method, std::string_view target) {
  auto url = urls::parse_origin_form(target);
  if (!url) return false;
  const std::vector<std::string> s = Segments(*url);
  for (const auto& e : RouteTable()) {
    if (e.info.upload && e.info.method == method && PathMatches(e.info.path, s, nullptr)) return true;
  }
  return false;
}

bool IsBulkRoute(std::string_view method, std::string_view target) {
  if (IsUploadRoute(method, target)) return true;
  return method == "GET" && RouteLabel(target) == "/api/v1/registrants:export";
}

// ------------------------------------------------------------ GatewayApi

GatewayApi::GatewayApi(Db& db, const Clock& clock, GatewayMetrics& metrics, const RegistryKeys& keys,
                       std::shared_ptr<const Gazetteer> gazetteer, GatewayApiOptions options)
    : db_(db),
      clock_(clock),
      metrics_(metrics),
      keys_(keys),
      gazetteer_(std::move(gazetteer)),
      options_(std::move(options)),
      limiter_(std::make_unique<RateLimiter>(options_.rate_limit_per_s, options_.rate_limit_burst, clock)) {}

GatewayApi::~GatewayApi() = default;

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

std::optional<HttpResponse> GatewayApi::Preflight(const HttpRequest& req) {
  HttpResponse response;
  if (req.authorization.empty() || !StartsWithNoCase(req.authorization, "Bearer ")) {
    response = ErrorResponse(401, "unauthenticated", "missing Authorization: Bearer <token>");
  } else {
    std::string_view bearer = std::string_view(req.authorization).substr(7);
    while (!bearer.empty() && bearer.front() == ' ') bearer.remove_prefix(1);
    auto token = Authenticate(db_, bearer);
    if (!token.ok()) {
      response = StatusResponse(token.status());
    } else {
      auto url = urls::parse_origin_form(req.target);
      if (!url) return std::nullopt;
      const std::vector<std::string> seg = Segments(*url);
      for (const auto& e : RouteTable()) {
        if (e.info.method != req.method || !PathMatches(e.info.path, seg, nullptr)) continue;
        if (std::find(e.info.roles.begin(), e.info.roles.end(), token->role) != e.info.roles.end()) {
          return std::nullopt;
        }
        response = ErrorResponse(403, "permission_denied",
                                 "role " + std::string(RoleName(token->role)) + " may not " + req.method +
                                     " " + std::string(e.info.path));
        break;
      }
      if (response.body.empty()) return std::nullopt;
    }
  }
  metrics_.CountRequest(RouteLabel(req.target), response.status);
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
  if (token->role != Role::kOperator && token->role != Role::kAdmin) {
    return Status(StatusCode::kPermissionDenied,
                  "role " + std::string(RoleName(token->role)) + " may not watch live alerts");
  }
  return token;
}

HttpResponse GatewayApi::Route(const HttpRequest& req, std::string_view* route) {
  *route = RouteLabel(req.target);
  auto url = urls::parse_origin_form(req.target);
  if (!url) return ErrorResponse(400, "invalid_argument", "malformed request target");
  const std::vector<std::string> seg = Segments(*url);
  const bool api = seg.size() >= 2 && seg[0] == "api" && seg[1] == "v1";

  Token token{"", "", Role::kOperator};
  Access access;
  if (api) {
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
    auto authenticated = Authenticate(db_, bearer);
    if (!authenticated.ok()) return StatusResponse(authenticated.status());
    token = *authenticated;
    if (int64_t wait_ms = limiter_->Take(token.id); wait_ms > 0) {
      HttpResponse r =
          ErrorResponse(429, "resource_exhausted", "rate limit exceeded for this token; retry later");
      r.headers.emplace_back("Retry-After", std::to_string((wait_ms + 999) / 1000));
      return r;
    }
    access.actor = token.id;
    if (!req.purpose.empty()) {
      if (std::find(std::begin(kAccessPurposes), std::end(kAccessPurposes), req.purpose) ==
          std::end(kAccessPurposes)) {
        std::string accepted;
        for (auto p : kAccessPurposes) accepted += (accepted.empty() ? "" : ", ") + std::string(p);
        return ErrorResponse(400, "invalid_argument", "unknown purpose (accepted: " + accepted + ")",
                             "X-Amparo-Purpose");
      }
      access.purpose = req.purpose;
    }
  }

  const RouteEntry* entry = nullptr;
  std::string param;
  std::string allow;
  for (const auto& e : RouteTable()) {
    std::string p;
    if (!PathMatches(e.info.path, seg, &p)) continue;
    if (e.info.method == req.method) {
      entry = &e;
      param = std::move(p);
      break;
    }
    allow += (allow.empty() ? "" : ", ") + std::string(e.info.method);
  }
  if (entry == nullptr) {
    if (!allow.empty()) return MethodNotAllowed(allow);
    return ErrorResponse(404, "not_found", "no such route");
  }
  if (entry->info.authenticated &&
      std::find(entry->info.roles.begin(), entry->info.roles.end(), token.role) == entry->info.roles.end()) {
    return ErrorResponse(403, "permission_denied",
                         "role " + std::string(RoleName(token.role)) + " may not " + req.method + " " +
                             std::string(entry->info.path));
  }
  Call call{req, *url, param, token, access, db_, clock_, metrics_, keys_, gazetteer_.get(), options_};
  return entry->handler(call);
}

}  // namespace amparo::gateway
