// amparo-gateway: the registration API, the operator console and the live
// alert feed; owns the registry and streams its changes to amparo-rules.
// Thin on purpose: everything lives in the amparo_gateway library.
#include <iostream>

#include "common/daemon.h"
#include "common/link.h"
#include "common/log.h"
#include "services/gateway/gateway_daemon.h"

int main(int argc, char** argv) {
  amparo::Config config;
  if (auto exit_code = amparo::StartDaemon(
          argc, argv, "amparo-gateway",
          "Serves the registration API, the operator console and live alerts over HTTP; streams registry\n"
          "changes to amparo-rules and subscriptions to amparo-notify.",
          &config)) {
    return *exit_code;
  }
  const auto& stop = amparo::InstallStopSignals();
  amparo::LinkContext link_context;
  auto daemon = amparo::gateway::GatewayDaemon::Create(config, link_context, amparo::SystemClock::Instance());
  if (!daemon.ok()) {
    std::cerr << "amparo-gateway: " << daemon.status().ToString() << "\n";
    return 1;
  }
  amparo::log::Info("ready", {{"listen", config.gateway.listen},
                              {"port", std::to_string((*daemon)->http_port())},
                              {"inbox", config.gateway.inbox}});
  (*daemon)->Run(stop);
  amparo::log::Info("stopping");
  return 0;
}
