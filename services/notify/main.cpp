// amparo-notify: routes consular alerts to the missions' subscriptions and
// delivers them as signed webhooks with retries. All logic lives in the
// amparo_notify library (notify_daemon.h); this only wires it up.
#include <iostream>

#include "common/daemon.h"
#include "common/link.h"
#include "common/log.h"
#include "services/notify/notify_daemon.h"

int main(int argc, char** argv) {
  amparo::Config config;
  if (auto exit_code = amparo::StartDaemon(
          argc, argv, "amparo-notify",
          "Routes consular alerts to subscriptions and delivers them as Standard Webhooks.", &config)) {
    return *exit_code;
  }
  const std::atomic<bool>& stop = amparo::InstallStopSignals();
  amparo::LinkContext link_context;
  auto daemon = amparo::notify::NotifyDaemon::Create(config, link_context, amparo::SystemClock::Instance());
  if (!daemon.ok()) {
    std::cerr << "amparo-notify: " << daemon.status().ToString() << "\n";
    return 1;
  }
  amparo::log::Info("ready", {{"inbox", config.notify.inbox}, {"db", config.DbPath("notify").string()}});
  (*daemon)->Run(stop);
  amparo::log::Info("stopped");
  return 0;
}
