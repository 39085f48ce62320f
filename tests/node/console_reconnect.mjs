// Drives the agent console in headless Chromium across a restart of the bridge under it. The
// Rust test says what to wait for on stdin ("shown <ids>" / "screen <ids>", comma separated)
// and reads what the page showed; any browser console error other than the expected failed
// reconnection attempts fails the run.
import { chromium } from "playwright-core";
import readline from "node:readline";

const [url] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (s) => process.stdout.write(s + "\n");
const errors = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const onScreen = (page) =>
  page.evaluate(() => [...document.querySelectorAll(".call")].map((c) => c.dataset.callId).sort().join(","));
try {
  const page = await browser.newPage();
  page.on("console", (msg) => {
    // While the bridge restarts, the browser logs each refused reconnection attempt.
    if (msg.type() === "error" && !/ERR_CONNECTION_REFUSED|WebSocket connection/.test(msg.text())) errors.push(msg.text());
  });
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector("#status.online");
  await page.fill("#username", "22010");
  await page.fill("#max-calls", "3");
  await page.click("#login-button");
  await page.waitForSelector("#desk:not([hidden])");
  say("LOGGED_IN");
  for await (const line of lines) {
    const [what, ids] = line.split(" ");
    if (what === "done") break;
    // Wait until the screen shows exactly these calls, with the agent still logged in.
    await page.waitForFunction(
      (want) => [...document.querySelectorAll(".call")].map((c) => c.dataset.callId).sort().join(",") === want,
      ids ?? "",
      { timeout: 30000 },
    );
    if (await page.isHidden("#desk")) throw new Error("the console went back to its login");
    say(what.toUpperCase() + " " + (await onScreen(page)));
  }
} finally {
  await browser.close();
}
if (errors.length) {
  say("CONSOLE_ERRORS " + JSON.stringify(errors));
  process.exit(1);
}
say("DONE");
process.exit(0);
