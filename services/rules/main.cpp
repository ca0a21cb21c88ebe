// amparo-rules: matches crisis events against registered nationals and raises
// consular alerts. All logic lives in the amparo_rules library.
#include <iostream>

#include "common/daemon.h"
#include "common/link.h"
#include "common/log.h"
#include "services/rules/rules_daemon.h"

int main(int argc, char** argv) {
  amparo::Config config;
  if (auto exit_code =
          amparo::StartDaemon(argc, argv, "amparo-rules",
                              "Matches crisis events against registered nationals (spatial index) and "
                              "raises consular alerts to amparo-notify.",
                              &config)) {
    return *exit_code;
  }
  // A bad policy file is a configuration error: refuse to start, like a bad key.
  if (auto policy = amparo::rules::RulesDaemon::LoadPolicy(config); !policy.ok()) {
    std::cerr << "amparo-rules: refusing to start: bad policy: " << policy.status().ToString() << "\n";
    return 2;
  }
  const auto& stop = amparo::InstallStopSignals();
  amparo::LinkContext link_context;
  auto daemon = amparo::rules::RulesDaemon::Create(config, link_context, amparo::SystemClock::Instance(),
                                                   amparo::rules::SyncOptionsFrom(config.rules));
  if (!daemon.ok()) {
    std::cerr << "amparo-rules: " << daemon.status().ToString() << "\n";
    return 1;
  }
  amparo::log::Info("ready", {{"inbox", config.rules.inbox},
                              {"policy", (*daemon)->policy().fingerprint()},
                              {"registrants", std::to_string((*daemon)->engine().index().Size())}});
  (*daemon)->Run(stop);
  amparo::log::Info("stopped");
  return 0;
}
