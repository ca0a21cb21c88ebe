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
  const auto& stop = amparo::InstallStopSignals();
  amparo::LinkContext link_context;
  auto daemon = amparo::rules::RulesDaemon::Create(config, link_context, amparo::SystemClock::Instance());
  if (!daemon.ok()) {
    std::cerr << "amparo-rules: " << daemon.status().ToString() << "\n";
    return 1;
  }
  amparo::log::Info("ready", {{"inbox", config.rules.inbox},
                              {"registrants", std::to_string((*daemon)->engine().index().Size())}});
  (*daemon)->Run(stop);
  amparo::log::Info("stopped");
  return 0;
}
