// Drives the agent console in headless Chromium, across restarts of the bridge under it or
// through a proxy that signs people in. The Rust test says what to wait for on stdin
// ("shown <ids>" / "screen <ids>", comma separated) and reads what the page showed; any
// browser console error other than the expected failed reconnection attempts fails the run.
import { loggedIn, report } from "./console_page.mjs";
import readline from "node:readline";

// `credentials`, "user:password", for a console behind a basic-auth proxy.
const [url, credentials] = process.argv.slice(2);
const [user, password] = credentials?.split(":") ?? [];
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (s) => process.stdout.write(s + "\n");
const errors = [];

const { browser, page } = await loggedIn(url, {
  username: "22010",
  maxCalls: 3,
  expected: /ERR_CONNECTION_REFUSED|WebSocket connection/,
  credentials: credentials && { username: user, password },
}, errors);
try {
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
    say(what.toUpperCase() + " " + (ids ?? ""));
  }
} finally {
  await browser.close();
}
report(errors);
