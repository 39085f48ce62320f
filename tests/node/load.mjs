// Load generator for the agents benchmark: N agent UIs on one socket.io-client each. Logs
// them all in, answers every NEW_CALL with END_CALL at once; stdin "report" prints timings
// and the END_CALLs still unanswered, "reset" forgets them.
import { io } from "socket.io-client";
import readline from "node:readline";

const [url, count, firstId] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
let connected = 0;
const newCalls = [];
const endLatency = [];
const errors = [];
let endErrors = 0;
let disconnected = 0;
const unanswered = new Set();

function agent(i) {
  return new Promise((resolve) => {
    const username = String(firstId + i);
    const socket = io(url, { path: "/callcontrol", transports: ["websocket"], reconnection: false, forceNew: true, timeout: 60000 });
    const sent = new Map();
    socket.on("connect", () => socket.emit("USER_CONNECT", { username, maxCalls: 4 }));
    socket.on("USER_CONNECTED", () => resolve());
    socket.on("USER_CONNECTION_ERROR", (d) => { errors.push(d.error); resolve(); });
    socket.on("connect_error", (e) => { errors.push(e.message); resolve(); });
    socket.on("NEW_CALL", (d) => {
      newCalls.push(now());
      sent.set(d.callId, now());
      unanswered.add(`${username}/${d.callId}`);
      socket.emit("END_CALL", { callId: d.callId });
    });
    socket.on("CALL_ENDED", (d) => {
      const t = sent.get(d.callId);
      if (t !== undefined) { endLatency.push(now() - t); sent.delete(d.callId); }
      unanswered.delete(`${username}/${d.callId}`);
    });
    socket.on("END_CALL_ERROR", (d) => {
      endErrors += 1;
      errors.push(d.error);
      unanswered.delete(`${username}/${d.callId}`);
    });
    socket.on("disconnect", () => { disconnected += 1; });
  });
}

// Logins as a crowd arriving at once: up to `window` under way, the next starting as soon
// as any ends (batches that wait for their slowest login would measure that login, not the
// server's rate); the window keeps the listener's accept queue from overflowing.
const started = now();
const window = 500;
let next = 0;
const worker = async () => { while (next < count) await agent(next++); };
await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
say({ event: "ready", ms: now() - started, errors: errors.length, firstError: errors[0] ?? null });

const pct = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * q))] : null; };
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "report") {
    say({ event: "report", newCalls: newCalls.length, firstNewCall: Math.min(...newCalls), lastNewCall: Math.max(...newCalls), now: now(),
          ended: endLatency.length, endErrors, unanswered: unanswered.size, disconnected, p50: pct(endLatency, 0.5), p99: pct(endLatency, 0.99), errors: errors.length, firstError: errors[0] ?? null });
  } else if (line === "reset") {
    newCalls.length = 0;
    endLatency.length = 0;
    endErrors = 0;
    errors.length = 0;
  } else if (line === "exit") {
    process.exit(0);
  }
});
