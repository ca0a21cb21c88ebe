// The web console in a real headless browser (Debian's Chromium driven by
// playwright-core from tests/console/), against the real daemons.
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/integration/harness.h"

namespace amparo::integration {
namespace {

namespace fs = std::filesystem;

TEST(ConsoleTest, OperatorSeesOwnStatesAlertArriveLiveAndAnotherStateSeesNothing) {
  Deployment d;
  d.StartAll();
  std::string registrar = d.Token("NPL", "registrar");
  std::string npl_operator = d.Token("NPL", "operator");
  std::string phl_operator = d.Token("PHL", "operator");
  // Two Nepalese households about 2 km from the epicentre of us2000hf42.
  for (const auto& body : {RegistrantBody("NPL-1", "MNP", 18.1400, 147.2700, 3),
                           RegistrantBody("NPL-2", "MNP", 18.1300, 147.2500, 3)}) {
    ASSERT_EQ(d.Call("POST", "/api/v1/registrants", registrar, body).status, 201);
  }
  d.WaitRegistryHandedOver();

  const char* env_shot = std::getenv("AMPARO_CONSOLE_SCREENSHOT");
  fs::path screenshot = env_shot ? fs::path(env_shot) : d.dir() / "console.png";
  fs::path feed = SharedFixtures() / "usgs/summary-exxamalte/usgs_all_earthquakes_past_day.json";
  fs::path script = fs::path(AMPARO_SOURCE_DIR) / "tests/console/console_check.mjs";
  std::string out = RunTool({"node", script.string(), d.base_url(), npl_operator, "NPL / MNP", "2 / 6 / 0",
                             phl_operator, screenshot.string(), "--", (BinDir() / "amparo").string(), "replay",
                             "--config", d.config().string(), feed.string()});
  EXPECT_NE(out.find("console-check ok"), std::string::npos) << out;
  EXPECT_NE(out.find("M 5.2 - 157km E of Pagan"), std::string::npos) << out;
  EXPECT_GT(fs::file_size(screenshot), 1000u);
}

}  // namespace
}  // namespace amparo::integration
