// The agent console in headless Chromium, logged in as an agent: what the browser tests share.
import { chromium } from "playwright-core";

// Opens the console at `url` in a new headless Chromium and logs in as `username` with
// `maxCalls`; `errors` collects the page's console errors that `expected` does not match.
// `credentials` ({username, password}) answer the site's basic-auth challenge, as a person
// signing in to it does.
export async function loggedIn(url, { username, maxCalls, viewport, expected, credentials }, errors) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const context = await browser.newContext({
    ...(viewport ? { viewport } : {}),
    ...(credentials ? { httpCredentials: credentials } : {}),
  });
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error" && !(expected && expected.test(msg.text()))) errors.push(msg.text());
  });
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector("#status.online");
  await page.fill("#username", username);
  await page.fill("#max-calls", String(maxCalls));
  await page.click("#login-button");
  await page.waitForSelector("#desk:not([hidden])");
  return { browser, page };
}

// Ends the run: DONE, or the page's console errors and a failure.
export function report(errors) {
  if (errors.length) {
    process.stdout.write("CONSOLE_ERRORS " + JSON.stringify(errors) + "\n");
    process.exit(1);
  }
  process.stdout.write("DONE\n");
  process.exit(0);
}
