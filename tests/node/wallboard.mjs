// Drives the supervisors' wallboard in headless Chromium. The Rust test says on stdin what to
// wait for and reads what the page showed:
//   tile <queue> <waiting>  -> TILE <queue> <waiting> level=<…> answered=<…> abandoned=<…>
//   agent <id> <state>      -> AGENT <id> <state> <the card's text>
//   shot                    -> SHOT, the whole page as a PNG at SCREENSHOT_PATH
//   done                    -> DONE, or CONSOLE_ERRORS and a failure
// READY comes first, once the page is connected. Any browser console error other than the
// failed reconnection attempts of a bridge restarting under it fails the run.
import { chromium } from "playwright-core";
import readline from "node:readline";
import { report } from "./console_page.mjs";

const [url, screenshot] = process.argv.slice(2);
if (!url) {
  process.stderr.write("usage: node wallboard.mjs URL [SCREENSHOT_PATH]\n");
  process.exit(2);
}
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (s) => process.stdout.write(s + "\n");
const errors = [];
const expected = /ERR_CONNECTION_REFUSED|WebSocket connection/;
const timeout = 30000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  // The size of a wall screen, so that the screenshot shows the layout a room sees.
  const context = await browser.newContext({ viewport: { width: 1600, height: 900 } });
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error" && !expected.test(msg.text())) errors.push(msg.text());
  });
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector("#status.online", { timeout });
  say("READY");

  for await (const line of lines) {
    const [what, ...args] = line.trim().split(/\s+/);
    if (what === "done") break;
    if (what === "tile") {
      const [queue, waiting] = args;
      const tile = `section.tile[data-queue="${queue}"]`;
      await page.waitForFunction(
        ([tile, waiting]) => document.querySelector(`${tile} .waiting`)?.textContent === waiting,
        [tile, waiting],
        { timeout },
      );
      const text = (part) => page.textContent(`${tile} ${part}`);
      say(`TILE ${queue} ${waiting} level=${await text(".level")} answered=${await text(".answered")} abandoned=${await text(".abandoned")}`);
    } else if (what === "agent") {
      const [id, state] = args;
      const card = `li.agent[data-agent="${id}"]`;
      await page.waitForSelector(`${card}[data-state="${state}"]`, { state: "attached", timeout });
      const shown = await page.$eval(card, (li) => li.textContent.replace(/\s+/g, " ").trim());
      say(`AGENT ${id} ${state} ${shown}`);
    } else if (what === "shot") {
      if (!screenshot) throw new Error("shot: no SCREENSHOT_PATH was given");
      await page.screenshot({ path: screenshot, fullPage: true });
      say("SHOT");
    } else if (what) {
      throw new Error(`unknown command: ${line}`);
    }
  }
} finally {
  await browser.close();
}
report(errors);
