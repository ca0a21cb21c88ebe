// amparo-ingest: reads USGS earthquake feeds (spool files and HTTP polling)
// and hands each new event revision to amparo-rules. All logic lives in the
// amparo_ingest library; this only wires config, signals and the loop.
#include <iostream>

#include "common/clock.h"
#include "common/daemon.h"
#include "common/link.h"
#include "common/log.h"
#include "services/ingest/ingest_daemon.h"

int main(int argc, char** argv) {
  amparo::Config config;
  if (auto exit_code =
          amparo::StartDaemon(argc, argv, "amparo-ingest",
                              "Reads crisis feeds (USGS GeoJSON from the spool directory and HTTP "
                              "polling) and sends normalised events to amparo-rules.",
                              &config)) {
    return *exit_code;
  }
  const std::atomic<bool>& stop = amparo::InstallStopSignals();
  amparo::LinkContext link_ctx;
  auto daemon = amparo::ingest::IngestDaemon::Create(config, link_ctx, amparo::SystemClock::Instance());
  if (!daemon.ok()) {
    std::cerr << "amparo-ingest: " << daemon.status().ToString() << "\n";
    return 1;
  }
  amparo::log::Info("ready", {{"spool_dir", (*daemon)->spool_dir().string()},
                              {"rules_inbox", config.rules.inbox},
                              {"poll_sources", std::to_string(config.ingest.poll.size())}});
  (*daemon)->Run(stop);
  amparo::log::Info("stopping");
  return 0;
}
