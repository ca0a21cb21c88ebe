#include "services/cli/init.h"

#include <fstream>

#include "common/config.h"
#include "common/db.h"
#include "common/link.h"
#include "services/gateway/gateway_store.h"
#include "services/gateway/registry_keys.h"

namespace amparo::cli {

std::string DefaultConfigText(const std::string& listen) {
  return R"(# Amparo deployment configuration (TOML). Written by `amparo init`.
# Every key is shown with its default; see docs/configuration.md.
# Relative paths are relative to this file's directory.

data_dir = "data"      # SQLite databases (one per daemon) and the ingest spool
run_dir = "run"        # ipc:// sockets; created with mode 0700
keys_dir = "keys"      # CURVE key pairs; *.pub files are the ZAP allow-list
log_level = "info"     # debug | info | warn | error

[link]
# Durable hand-off between daemons. Unacknowledged messages stay in the
# sender's database and are resent; nothing accepted is lost.
resend_after_ms = 2000   # resend an unacknowledged message after this long
window = 512             # messages in flight per link; the rest wait on disk
high_water_mark = 1000   # ZeroMQ queue bound; at the bound sends wait
batch = 256              # messages stored per receiver transaction
curve = "auto"           # auto: CURVE + allow-list on tcp://, none on ipc://

[ingest]
# spool_dir = "data/spool"   # drop feed files here (write elsewhere, then rename)
max_file_bytes = 67108864    # larger files are rejected unread
scan_interval_ms = 500
validation = "lenient"         # CAP: strict rejects any schema deviation; lenient warns on known ones
xml_max_document_bytes = 33554432
xml_max_depth = 64
xml_max_elements = 500000
# trust_store = "keys/cap-signers.pem"   # certificates of trusted CAP signers (XML-DSig)
require_trusted_signers = false
# push_listen = "127.0.0.1:8090"        # HTTP push of CAP (POST /push); off when unset
# push_token = ""                       # bearer token required by POST /push
push_max_body_bytes = 1048576
# push_port_file = "run/ingest-push.port"

# Poll a feed over HTTP(S); repeat the block for more sources.
# [[ingest.poll]]
# name = "usgs"
# url = "https://earthquake.usgs.gov/earthquakes/feed/v1.0/summary/all_hour.geojson"
# format = "usgs-geojson"
# interval_s = 60
# timeout_ms = 10000

[rules]
# inbox = "ipc://run/rules.ipc"     # default: <run_dir>/rules.ipc
earthquake_min_mmi = 6.0            # footprint edge: predicted intensity (6 = strong shaking)
max_ids_per_alert = 1000            # registrant ids carried in one alert

[notify]
# inbox = "ipc://run/notify.ipc"
max_attempts = 12           # then the delivery is dead-lettered
backoff_initial_ms = 1000   # exponential backoff with full jitter
backoff_max_ms = 300000
http_timeout_ms = 10000     # per webhook request
max_in_flight = 16          # concurrent webhook requests
outcome_commit_interval_ms = 20  # outcomes finishing this close together share one commit

[gateway]
# inbox = "ipc://run/gateway.ipc"
listen = ")" + listen + R"("   # HTTP API and console; port 0 picks a free port
max_body_bytes = 1048576    # larger requests get 413
request_timeout_ms = 30000
# port_file = "run/gateway.port"   # the bound port is written here when set
retention_days = 730        # a new registrant is kept this long unless given retention_until
retention_check_s = 3600    # how often records past retention are purged
inbox_commit_interval_ms = 20  # under load, one inbox commit per interval (alerts reach the console this much later at most)
rate_limit_per_s = 50       # requests per second per token (token bucket); then 429
rate_limit_burst = 200
max_import_bytes = 268435456  # bulk import bodies; larger get 413
import_batch_rows = 50000   # rows per import batch (sorted, audited, handed off)
# gazetteer = "data/gazetteer/cities.tsv"   # place names; default: the bundled file
)";
}

Status InitDeployment(const InitOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return Internal("creating " + options.dir.string() + ": " + ec.message());
  fs::path config_path = options.dir / "amparo.toml";
  if (fs::exists(config_path) && !options.force) {
    return {StatusCode::kAlreadyExists, config_path.string() + " exists (use --force to overwrite)"};
  }
  std::string text = DefaultConfigText(options.listen);
  auto parsed = Config::Parse(text, fs::absolute(options.dir));
  if (!parsed.ok()) return parsed.status();  // e.g. a bad --listen
  {
    std::ofstream out(config_path, std::ios::trunc);
    out << text;
    if (!out) return Internal("writing " + config_path.string());
  }
  const Config& config = *parsed;
  for (const fs::path& d : {config.data_dir, config.run_dir, config.keys_dir}) {
    fs::create_directories(d, ec);
    if (ec) return Internal("creating " + d.string() + ": " + ec.message());
  }
  fs::permissions(config.run_dir, fs::perms::owner_all, ec);
  fs::permissions(config.keys_dir, fs::perms::owner_all, ec);
  for (const char* owner : kKeyOwners) {
    if (fs::exists(config.keys_dir / (std::string(owner) + ".key"))) continue;  // keep existing keys
    AMPARO_RETURN_IF_ERROR(WriteCurveKeyPair(config.keys_dir, owner, GenerateCurveKeyPair()));
  }
  // The key that encrypts names and contact details in the registry; never
  // stored in a database.
  AMPARO_RETURN_IF_ERROR(gateway::EnsureRegistryKey(config.keys_dir));
  // The gateway database holds the tokens `amparo token create` writes; the
  // other daemons create theirs on first start.
  auto db = Db::Open(config.DbPath("gateway"));
  if (!db.ok()) return db.status();
  return gateway::MigrateGatewayDb(*db);
}

}  // namespace amparo::cli
