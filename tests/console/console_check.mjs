// Drives the Amparo console in Debian's headless Chromium, as an operator
// would: opens the page, enters a token, waits for the live feed, then runs a
// command (the test replays a feed) and waits for the alert to appear live.
// A second operator of another state must see nothing of it.
//
// usage: node console_check.mjs BASE_URL TOKEN EXPECT_ROW EXPECT_TEXT OTHER_TOKEN SCREENSHOT -- CMD ARGS...
// Exit status 0 when every check holds; the failure is printed otherwise.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";

const [base, token, expectRow, expectText, otherToken, screenshot, sep, ...command] = process.argv.slice(2);
if (sep !== "--" || command.length === 0) {
  console.error("usage: node console_check.mjs BASE_URL TOKEN EXPECT_ROW EXPECT_TEXT OTHER_TOKEN SCREENSHOT -- CMD...");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const operator = await (await browser.newContext()).newPage();
  await operator.goto(base + "/");
  await operator.fill("#token", token);
  await operator.click("#login button[type=submit]");
  await operator.waitForSelector("#status.live", { timeout: 15000 });
  await operator.waitForSelector("#empty:not([hidden])", { timeout: 15000 });
  if (await operator.isVisible("#login")) throw new Error("the token form is still shown after login");

  execFileSync(command[0], command.slice(1), { stdio: "inherit" });

  const row = operator.locator("#alerts tbody tr", { hasText: expectRow });
  await row.waitFor({ timeout: 30000 });
  const text = await row.innerText();
  if (!text.includes(expectText)) throw new Error(`row "${text}" lacks "${expectText}"`);
  if ((await operator.locator("#alerts tbody tr").count()) !== 1) throw new Error("expected exactly one alert row");
  await operator.screenshot({ path: screenshot, fullPage: true });

  // Another state's operator sees none of it, neither listed nor live.
  const other = await (await browser.newContext()).newPage();
  await other.goto(base + "/");
  await other.fill("#token", otherToken);
  await other.click("#login button[type=submit]");
  await other.waitForSelector("#status.live", { timeout: 15000 });
  await other.waitForSelector("#empty:not([hidden])", { timeout: 15000 });
  if ((await other.locator("#alerts tbody tr").count()) !== 0) throw new Error("another state sees alert rows");
  console.log("console-check ok: " + text.replace(/\s+/g, " "));
} finally {
  await browser.close();
}
