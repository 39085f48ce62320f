// Drives the agent console in headless Chromium. The Rust test starts calls when this script
// prints "WANT_CALL n" and reads the outcome; any browser console error fails the run.
import { loggedIn, report } from "./console_page.mjs";
import readline from "node:readline";

const [url, screenshot] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (s) => process.stdout.write(s + "\n");
const errors = [];

const { browser, page } = await loggedIn(url, { username: "22010", maxCalls: 3, viewport: { width: 1280, height: 800 } }, errors);
try {
  say("LOGGED_IN");

  // Two calls arrive; end the newer one (the platform's DELETE /calls/active ends the call
  // the agent took last).
  say("WANT_CALL 2");
  await lines.next();
  await page.waitForFunction(() => document.querySelectorAll(".call").length === 2);
  const first = await page.locator(".call").last().getAttribute("data-call-id");
  await page.waitForTimeout(1200); // let the elapsed timers tick for the picture
  if (screenshot) await page.screenshot({ path: screenshot });
  await page.locator(`.call[data-call-id="${first}"] .end`).click();
  await page.waitForFunction((id) => !document.querySelector(`.call[data-call-id="${id}"]`), first);
  say("ENDED " + first);

  // Reject the other one.
  const second = await page.locator(".call").first().getAttribute("data-call-id");
  await page.locator(`.call[data-call-id="${second}"] .reject`).click();
  await page.waitForFunction(() => document.querySelectorAll(".call").length === 0);
  say("REJECTED " + second);

  await page.click("#logout-button");
  await page.waitForSelector("#login:not([hidden])");
  say("LOGGED_OUT");
} finally {
  await browser.close();
}
report(errors);
