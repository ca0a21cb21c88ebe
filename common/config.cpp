#include "common/config.h"

#include <toml++/toml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace amparo {
namespace {

using std::filesystem::path;

// Reads typed keys from one table, remembers which keys were read, and
// reports keys it does not know.
class TableReader {
 public:
  TableReader(const toml::table* table, std::string prefix) : table_(table), prefix_(std::move(prefix)) {}

  std::string Key(std::string_view k) const { return prefix_.empty() ? std::string(k) : prefix_ + "." + std::string(k); }

  Status Int(std::string_view k, int64_t lo, int64_t hi, int64_t* out) {
    known_.insert(std::string(k));
    if (!table_) return Status::Ok();
    const toml::node* n = table_->get(k);
    if (!n) return Status::Ok();
    auto v = n->value<int64_t>();
    if (!v || !n->is_integer()) return InvalidArgument("must be an integer", Key(k));
    if (*v < lo || *v > hi) {
      return InvalidArgument("must be between " + std::to_string(lo) + " and " + std::to_string(hi), Key(k));
    }
    *out = *v;
    return Status::Ok();
  }
  Status Int(std::string_view k, int lo, int hi, int* out) {
    int64_t v = *out;
    AMPARO_RETURN_IF_ERROR(Int(k, static_cast<int64_t>(lo), static_cast<int64_t>(hi), &v));
    *out = static_cast<int>(v);
    return Status::Ok();
  }
  Status Double(std::string_view k, double lo, double hi, double* out) {
    known_.insert(std::string(k));
    if (!table_) return Status::Ok();
    const toml::node* n = table_->get(k);
    if (!n) return Status::Ok();
    if (!n->is_number()) return InvalidArgument("must be a number", Key(k));
    double v = n->value<double>().value_or(0);
    if (v < lo || v > hi) {
      std::ostringstream msg;
      msg << "must be between " << lo << " and " << hi;
      return InvalidArgument(msg.str(), Key(k));
    }
    *out = v;
    return Status::Ok();
  }
  Status String(std::string_view k, std::string* out) {
    known_.insert(std::string(k));
    if (!table_) return Status::Ok();
    const toml::node* n = table_->get(k);
    if (!n) return Status::Ok();
    if (!n->is_string()) return InvalidArgument("must be a string", Key(k));
    *out = *n->value<std::string>();
    return Status::Ok();
  }
  void Known(std::string_view k) { known_.insert(std::string(k)); }
  Status CheckUnknown() const {
    if (!table_) return Status::Ok();
    for (const auto& [k, v] : *table_) {
      if (!known_.count(std::string(k.str()))) return InvalidArgument("unknown key", Key(k.str()));
    }
    return Status::Ok();
  }
  const toml::table* SubTable(std::string_view k, Status* st) {
    known_.insert(std::string(k));
    if (!table_) return nullptr;
    const toml::node* n = table_->get(k);
    if (!n) return nullptr;
    if (!n->is_table()) *st = InvalidArgument("must be a table", Key(k));
    return n->as_table();
  }

 private:
  const toml::table* table_;
  std::string prefix_;
  std::set<std::string> known_;
};

path Resolve(const path& base, const std::string& p) {
  path v(p);
  return v.is_absolute() ? v : (base / v).lexically_normal();
}

Status CheckEndpoint(const std::string& endpoint, const std::string& key) {
  if (endpoint.rfind("ipc://", 0) == 0) {
    if (endpoint.size() - 6 > 100) return InvalidArgument("ipc path longer than 100 characters", key);
    return Status::Ok();
  }
  if (endpoint.rfind("tcp://", 0) == 0) return Status::Ok();
  if (endpoint.rfind("inproc://", 0) == 0) return Status::Ok();
  return InvalidArgument("must start with ipc://, tcp:// or inproc://", key);
}

Status ParseTable(const toml::table& root, const path& base, Config* c) {
  Status st;
  TableReader top(&root, "");
  std::string data_dir = "data", run_dir = "run", keys_dir = "keys";
  AMPARO_RETURN_IF_ERROR(top.String("data_dir", &data_dir));
  AMPARO_RETURN_IF_ERROR(top.String("run_dir", &run_dir));
  AMPARO_RETURN_IF_ERROR(top.String("keys_dir", &keys_dir));
  AMPARO_RETURN_IF_ERROR(top.String("log_level", &c->log_level));
  if (c->log_level != "debug" && c->log_level != "info" && c->log_level != "warn" && c->log_level != "error") {
    return InvalidArgument("must be one of debug, info, warn, error", "log_level");
  }
  c->data_dir = Resolve(base, data_dir);
  c->run_dir = Resolve(base, run_dir);
  c->keys_dir = Resolve(base, keys_dir);

  // [link]
  {
    TableReader t(top.SubTable("link", &st), "link");
    AMPARO_RETURN_IF_ERROR(st);
    AMPARO_RETURN_IF_ERROR(t.Int("resend_after_ms", 10, 3'600'000, &c->link.resend_after_ms));
    AMPARO_RETURN_IF_ERROR(t.Int("window", 1, 100'000, &c->link.window));
    AMPARO_RETURN_IF_ERROR(t.Int("high_water_mark", 1, 1'000'000, &c->link.high_water_mark));
    AMPARO_RETURN_IF_ERROR(t.Int("batch", 1, 100'000, &c->link.batch));
    std::string curve = "auto";
    AMPARO_RETURN_IF_ERROR(t.String("curve", &curve));
    if (curve == "auto") c->link.curve = CurveMode::kAuto;
    else if (curve == "on") c->link.curve = CurveMode::kOn;
    else if (curve == "off") c->link.curve = CurveMode::kOff;
    else return InvalidArgument("must be one of auto, on, off", "link.curve");
    AMPARO_RETURN_IF_ERROR(t.CheckUnknown());
  }
  // [ingest]
  {
    TableReader t(top.SubTable("ingest", &st), "ingest");
    AMPARO_RETURN_IF_ERROR(st);
    c->ingest.inbox = "ipc://" + (c->run_dir / "ingest.ipc").string();
    AMPARO_RETURN_IF_ERROR(t.String("inbox", &c->ingest.inbox));
    AMPARO_RETURN_IF_ERROR(CheckEndpoint(c->ingest.inbox, "ingest.inbox"));
    std::string spool = (c->data_dir / "spool").string();
    AMPARO_RETURN_IF_ERROR(t.String("spool_dir", &spool));
    c->ingest.spool_dir = Resolve(base, spool);
    AMPARO_RETURN_IF_ERROR(t.Int("max_file_bytes", int64_t{1}, int64_t{1} << 32, &c->ingest.max_file_bytes));
    AMPARO_RETURN_IF_ERROR(t.Int("scan_interval_ms", 10, 3'600'000, &c->ingest.scan_interval_ms));
    AMPARO_RETURN_IF_ERROR(t.String("validation", &c->ingest.validation));
    if (c->ingest.validation != "strict" && c->ingest.validation != "lenient")
      return InvalidArgument("must be \"strict\" or \"lenient\"", "ingest.validation");
    AMPARO_RETURN_IF_ERROR(
        t.Int("xml_max_document_bytes", int64_t{1024}, int64_t{1} << 30, &c->ingest.xml_max_document_bytes));
    AMPARO_RETURN_IF_ERROR(t.Int("xml_max_depth", 8, 256, &c->ingest.xml_max_depth));
    AMPARO_RETURN_IF_ERROR(t.Int("xml_max_elements", int64_t{100}, int64_t{10'000'000}, &c->ingest.xml_max_elements));
    std::string trust_store;
    AMPARO_RETURN_IF_ERROR(t.String("trust_store", &trust_store));
    if (!trust_store.empty()) {
      c->ingest.trust_store = Resolve(base, trust_store);
      std::error_code exists_ec;
      if (!std::filesystem::exists(c->ingest.trust_store, exists_ec)) {
        return InvalidArgument("does not exist: " + c->ingest.trust_store.string(), "ingest.trust_store");
      }
    }
    t.Known("require_trusted_signers");
    if (const toml::table* it = root.get_as<toml::table>("ingest")) {
      if (const toml::node* n = it->get("require_trusted_signers")) {
        if (!n->is_boolean()) return InvalidArgument("must be true or false", "ingest.require_trusted_signers");
        c->ingest.require_trusted_signers = *n->value<bool>();
      }
    }
    AMPARO_RETURN_IF_ERROR(t.String("push_listen", &c->ingest.push_listen));
    if (!c->ingest.push_listen.empty()) {
      auto colon = c->ingest.push_listen.rfind(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == c->ingest.push_listen.size()) {
        return InvalidArgument("must be host:port (or \"\" to disable)", "ingest.push_listen");
      }
    }
    AMPARO_RETURN_IF_ERROR(t.String("push_token", &c->ingest.push_token));
    AMPARO_RETURN_IF_ERROR(t.Int("push_max_body_bytes", int64_t{1024}, int64_t{32} << 20,
                                 &c->ingest.push_max_body_bytes));
    std::string push_port_file;
    AMPARO_RETURN_IF_ERROR(t.String("push_port_file", &push_port_file));
    if (!push_port_file.empty()) c->ingest.push_port_file = Resolve(base, push_port_file);
    AMPARO_RETURN_IF_ERROR(
        t.Int("correlation_earthquake_window_s", 1, 86'400, &c->ingest.correlation_earthquake_window_s));
    AMPARO_RETURN_IF_ERROR(t.Double("correlation_earthquake_distance_km", 0, 2000,
                                    &c->ingest.correlation_earthquake_distance_km));
    AMPARO_RETURN_IF_ERROR(t.Double("correlation_earthquake_magnitude_delta", 0, 5,
                                    &c->ingest.correlation_earthquake_magnitude_delta));
    AMPARO_RETURN_IF_ERROR(t.Int("correlation_area_window_h", 1, 720, &c->ingest.correlation_area_window_h));
    t.Known("poll");
    const toml::table* ingest = root.get_as<toml::table>("ingest");
    if (const toml::node* poll = ingest ? ingest->get("poll") : nullptr) {
      const toml::array* arr = poll->as_array();
      if (!arr) return InvalidArgument("must be an array of tables ([[ingest.poll]])", "ingest.poll");
      std::set<std::string> names;
      for (size_t i = 0; i < arr->size(); ++i) {
        std::string prefix = "ingest.poll[" + std::to_string(i) + "]";
        const toml::table* pt = (*arr)[i].as_table();
        if (!pt) return InvalidArgument("must be a table", prefix);
        TableReader p(pt, prefix);
        PollSource src;
        AMPARO_RETURN_IF_ERROR(p.String("name", &src.name));
        AMPARO_RETURN_IF_ERROR(p.String("url", &src.url));
        AMPARO_RETURN_IF_ERROR(p.String("format", &src.format));
        AMPARO_RETURN_IF_ERROR(p.Int("interval_s", 1, 86'400, &src.interval_s));
        AMPARO_RETURN_IF_ERROR(p.Int("timeout_ms", 100, 600'000, &src.timeout_ms));
        AMPARO_RETURN_IF_ERROR(p.String("validation", &src.validation));
        if (!src.validation.empty() && src.validation != "strict" && src.validation != "lenient")
          return InvalidArgument("must be \"strict\" or \"lenient\"", prefix + ".validation");
        AMPARO_RETURN_IF_ERROR(p.CheckUnknown());
        if (src.name.empty()) return InvalidArgument("is required", prefix + ".name");
        if (!names.insert(src.name).second) return InvalidArgument("duplicate source name", prefix + ".name");
        if (src.url.rfind("http://", 0) != 0 && src.url.rfind("https://", 0) != 0) {
          return InvalidArgument("must start with http:// or https://", prefix + ".url");
        }
        static const std::set<std::string> kFormats = {"usgs-geojson", "cap", "cap-atom", "cap-rss",
                                                       "gdacs-rss", "gdacs-api", "auto"};
        if (!kFormats.count(src.format)) {
          return InvalidArgument(
              "unknown format (known: usgs-geojson, cap, cap-atom, cap-rss, gdacs-rss, gdacs-api, auto)",
              prefix + ".format");
        }
        c->ingest.poll.push_back(std::move(src));
      }
    }
    AMPARO_RETURN_IF_ERROR(t.CheckUnknown());
  }
  auto default_inbox = [&](const char* daemon) { return "ipc://" + (c->run_dir / (std::string(daemon) + ".ipc")).string(); };
  // [rules]
  {
    TableReader t(top.SubTable("rules", &st), "rules");
    AMPARO_RETURN_IF_ERROR(st);
    c->rules.inbox = default_inbox("rules");
    AMPARO_RETURN_IF_ERROR(t.String("inbox", &c->rules.inbox));
    AMPARO_RETURN_IF_ERROR(CheckEndpoint(c->rules.inbox, "rules.inbox"));
    AMPARO_RETURN_IF_ERROR(t.Double("earthquake_min_mmi", 1.0, 12.0, &c->rules.earthquake_min_mmi));
    AMPARO_RETURN_IF_ERROR(t.Int("max_ids_per_alert", 0, 1'000'000, &c->rules.max_ids_per_alert));
    AMPARO_RETURN_IF_ERROR(t.Int("active_event_window_h", 1, 8760, &c->rules.active_event_window_h));
    AMPARO_RETURN_IF_ERROR(t.Int("registry_gap_timeout_ms", 100, 3'600'000, &c->rules.registry_gap_timeout_ms));
    AMPARO_RETURN_IF_ERROR(
        t.Int("registry_snapshot_timeout_ms", 1000, 86'400'000, &c->rules.registry_snapshot_timeout_ms));
    AMPARO_RETURN_IF_ERROR(
        t.Int("registry_probe_interval_ms", 1000, 86'400'000, &c->rules.registry_probe_interval_ms));
    AMPARO_RETURN_IF_ERROR(
        t.Int("registry_max_ahead_ranges", 1, 10'000'000, &c->rules.registry_max_ahead_ranges));
    std::string policy_file;
    AMPARO_RETURN_IF_ERROR(t.String("policy_file", &policy_file));
    if (!policy_file.empty()) {
      c->rules.policy_file = Resolve(base, policy_file);
      std::error_code policy_ec;
      if (!std::filesystem::is_regular_file(c->rules.policy_file, policy_ec)) {
        return InvalidArgument("no such file: " + c->rules.policy_file.string(), "rules.policy_file");
      }
    }
    AMPARO_RETURN_IF_ERROR(t.CheckUnknown());
  }
  // [notify]
  {
    TableReader t(top.SubTable("notify", &st), "notify");
    AMPARO_RETURN_IF_ERROR(st);
    c->notify.inbox = default_inbox("notify");
    AMPARO_RETURN_IF_ERROR(t.String("inbox", &c->notify.inbox));
    AMPARO_RETURN_IF_ERROR(CheckEndpoint(c->notify.inbox, "notify.inbox"));
    AMPARO_RETURN_IF_ERROR(t.Int("max_attempts", 1, 1000, &c->notify.max_attempts));
    AMPARO_RETURN_IF_ERROR(t.Int("backoff_initial_ms", 1, 3'600'000, &c->notify.backoff_initial_ms));
    AMPARO_RETURN_IF_ERROR(t.Int("backoff_max_ms", 1, 86'400'000, &c->notify.backoff_max_ms));
    AMPARO_RETURN_IF_ERROR(t.Int("http_timeout_ms", 100, 600'000, &c->notify.http_timeout_ms));
    AMPARO_RETURN_IF_ERROR(t.Int("max_in_flight", 1, 1024, &c->notify.max_in_flight));
    AMPARO_RETURN_IF_ERROR(
        t.Int("outcome_commit_interval_ms", 0, 1'000, &c->notify.outcome_commit_interval_ms));
    AMPARO_RETURN_IF_ERROR(t.CheckUnknown());
    if (c->notify.backoff_max_ms < c->notify.backoff_initial_ms) {
      return InvalidArgument("must be at least notify.backoff_initial_ms", "notify.backoff_max_ms");
    }
  }
  // [gateway]
  {
    TableReader t(top.SubTable("gateway", &st), "gateway");
    AMPARO_RETURN_IF_ERROR(st);
    c->gateway.inbox = default_inbox("gateway");
    AMPARO_RETURN_IF_ERROR(t.String("inbox", &c->gateway.inbox));
    AMPARO_RETURN_IF_ERROR(CheckEndpoint(c->gateway.inbox, "gateway.inbox"));
    AMPARO_RETURN_IF_ERROR(t.String("listen", &c->gateway.listen));
    auto colon = c->gateway.listen.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == c->gateway.listen.size()) {
      return InvalidArgument("must be host:port", "gateway.listen");
    }
    AMPARO_RETURN_IF_ERROR(t.Int("max_body_bytes", int64_t{1024}, int64_t{1} << 32, &c->gateway.max_body_bytes));
    AMPARO_RETURN_IF_ERROR(t.Int("request_timeout_ms", 100, 3'600'000, &c->gateway.request_timeout_ms));
    std::string port_file;
    AMPARO_RETURN_IF_ERROR(t.String("port_file", &port_file));
    if (!port_file.empty()) c->gateway.port_file = Resolve(base, port_file);
    AMPARO_RETURN_IF_ERROR(t.Int("retention_days", 1, 36'500, &c->gateway.retention_days));
    AMPARO_RETURN_IF_ERROR(t.Int("retention_check_s", 1, 86'400, &c->gateway.retention_check_s));
    AMPARO_RETURN_IF_ERROR(t.Int("inbox_commit_interval_ms", 0, 1'000, &c->gateway.inbox_commit_interval_ms));
    AMPARO_RETURN_IF_ERROR(t.Double("rate_limit_per_s", 0.01, 100'000, &c->gateway.rate_limit_per_s));
    AMPARO_RETURN_IF_ERROR(t.Double("rate_limit_burst", 1, 1'000'000, &c->gateway.rate_limit_burst));
    AMPARO_RETURN_IF_ERROR(t.Int("max_import_bytes", int64_t{1024}, int64_t{1} << 40, &c->gateway.max_import_bytes));
    AMPARO_RETURN_IF_ERROR(t.Int("import_batch_rows", 1, 100'000, &c->gateway.import_batch_rows));
    std::string gazetteer;
    AMPARO_RETURN_IF_ERROR(t.String("gazetteer", &gazetteer));
    if (!gazetteer.empty()) c->gateway.gazetteer = Resolve(base, gazetteer);
    AMPARO_RETURN_IF_ERROR(t.CheckUnknown());
  }
  for (const char* section : {"link", "ingest", "rules", "notify", "gateway"}) top.Known(section);
  return top.CheckUnknown();
}

}  // namespace

Result<Config> Config::Parse(std::string_view toml_text, const path& base_dir) {
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& err) {
    return InvalidArgument("TOML syntax error at line " + std::to_string(err.source().begin.line) + ": " +
                           std::string(err.description()));
  }
  Config c;
  AMPARO_RETURN_IF_ERROR(ParseTable(root, base_dir, &c));
  return c;
}

Result<Config> Config::Load(const path& file) {
  std::error_code ec;
  path abs = std::filesystem::absolute(file, ec);
  if (!std::filesystem::is_regular_file(abs, ec)) return NotFound("config file " + file.string() + " does not exist");
  std::ifstream in(abs);
  std::stringstream buf;
  buf << in.rdbuf();
  auto c = Parse(buf.str(), abs.parent_path());
  if (!c.ok()) return Status(c.status().code(), file.string() + ": " + c.status().message(), c.status().field());
  c->file = abs;
  return c;
}

}  // namespace amparo
