// Agent UIs for the fault runner (benches/faults.rs).
//   node faults.mjs agents URL COUNT FIRST_ID   N agent UIs that keep what they are shown;
//                                                stdin "view" prints {agent: [callIds]}.
//   node faults.mjs churn URL CYCLES FIRST_ID GRACE_MS
//                                                connect, USER_CONNECT, then USER_DISCONNECT,
//                                                or (every other cycle) close and log in again
//                                                at the very end of the grace, then
//                                                USER_DISCONNECT; N times.
//   node faults.mjs fuzz URL EVENTS FIRST_ID     10 sockets (half logged in as agents FIRST+1..)
//                                                send EVENTS random events; stdin "calls a,b"
//                                                names calls to aim at; prints a summary.
import { io } from "socket.io-client";
import readline from "node:readline";

const [mode, url, count, firstId] = [process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5])];
const say = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const errors = [];
const shown = new Map();

function login(username, { keep }) {
  return new Promise((resolve) => {
    const socket = io(url, { path: "/callcontrol", transports: ["websocket"], reconnection: false, forceNew: true, timeout: 60000 });
    const calls = new Set();
    if (keep) shown.set(username, calls);
    socket.on("connect", () => socket.emit("USER_CONNECT", { username, maxCalls: 8 }));
    socket.on("USER_CONNECTED", () => { socket.loggedIn = true; resolve(socket); });
    socket.on("USER_CONNECTION_ERROR", (d) => { errors.push(d.error); resolve(socket); });
    socket.on("connect_error", (e) => { errors.push(e.message); resolve(socket); });
    socket.on("NEW_CALL", (d) => {
      if (calls.has(d.callId)) errors.push(`NEW_CALL ${d.callId} twice for ${username}`);
      calls.add(d.callId);
    });
    socket.on("CALL_ENDED", (d) => {
      if (!calls.delete(d.callId)) errors.push(`CALL_ENDED ${d.callId} never shown to ${username}`);
    });
  });
}

if (mode === "agents") {
  const batch = 100;
  for (let i = 0; i < count; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - i) }, (_, k) => login(String(firstId + i + k), { keep: true })));
  }
  say({ event: "ready", errors: errors.length, firstError: errors[0] ?? null });
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    if (line === "view") {
      say({ event: "view", view: Object.fromEntries([...shown].map(([a, c]) => [a, [...c].sort()])), errors: errors.length, firstError: errors[0] ?? null });
    } else if (line === "exit") {
      process.exit(0);
    }
  });
} else if (mode === "churn") {
  const graceMs = Number(process.argv[6]);
  const parallel = 50;
  let done = 0, edge = 0;
  const edgeLost = [];
  // The error USER_DISCONNECT ended with, or null for USER_DISCONNECTED.
  const disconnect = (socket, username) => new Promise((resolve) => {
    const timer = setTimeout(() => resolve("no answer to USER_DISCONNECT"), 120000);
    const end = (error) => { clearTimeout(timer); resolve(error); };
    socket.once("USER_DISCONNECTED", () => end(null));
    socket.once("USER_DISCONNECTION_ERROR", (d) => end(d.error));
    socket.emit("USER_DISCONNECT", { username });
  });
  const cycle = async (i) => {
    const username = String(firstId + (i % 100));
    const socket = await login(username, { keep: false });
    if (i % 2 === 0) {
      const error = await disconnect(socket, username);
      if (error) errors.push(error);
      socket.close();
    } else {
      // Back as the grace ends, as a user reloading late would be: from 100 ms before the
      // session's end to 200 ms after it (the bridge looks every 100 ms).
      socket.close();
      await new Promise((r) => setTimeout(r, graceMs + ((i * 37) % 31 - 10) * 10));
      const again = await login(username, { keep: false });
      if (again.loggedIn) {
        edge++;
        const error = await disconnect(again, username);
        if (error) { edgeLost.push(error); errors.push(error); }
      }
      again.close();
    }
    done++;
  };
  for (let i = 0; i < count; i += parallel) {
    // One username per lane: a lane's cycles for the same agent run one after the other.
    await Promise.all(Array.from({ length: Math.min(parallel, count - i) }, (_, k) => cycle(i + k)));
  }
  say({ event: "done", cycles: done, errors: errors.length, firstError: errors[0] ?? null, edge, edgeLost: edgeLost.length, firstEdgeLost: edgeLost[0] ?? null });
  process.exit(0);
}

if (mode === "fuzz") {
  let seed = 12345;
  const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  const names = ["USER_CONNECT", "USER_DISCONNECT", "END_CALL", "NEW_CALL_ANSWERED", "NEW_CALL_ERROR", "HELLO", "", "NEW_CALL", "CALL_ENDED", "x".repeat(300)];
  let targets = ["1"];
  const value = (depth) => {
    switch (rnd(12)) {
      case 0: return null;
      case 1: return rnd(2) === 0;
      case 2: return rnd(1e6) - 5e5;
      case 3: return 1e308 * (rnd(2) ? 1 : -1);
      case 4: return "x".repeat(rnd(3) === 0 ? 20000 : rnd(40));
      case 5: return String(targets[rnd(targets.length)]);
      case 6: return Number(targets[rnd(targets.length)]);
      case 7: return depth > 0 ? Array.from({ length: rnd(4) }, () => value(depth - 1)) : [];
      case 8: return Buffer.from("binary attachment");
      case 9: return String(firstId + rnd(12));
      case 10: { let v = {}; let d = v; for (let i = 0; i < 40; i++) { d.n = {}; d = d.n; } return v; }
      default: return depth > 0 ? payload(depth - 1) : {};
    }
  };
  const keys = ["username", "userName", "maxCalls", "callId", "error", "extra", "__proto__"];
  const payload = (depth) => Object.fromEntries(Array.from({ length: rnd(4) }, () => [keys[rnd(keys.length)], value(depth)]));
  const sockets = [];
  for (let i = 0; i < 10; i++) {
    const socket = io(url, { path: "/callcontrol", transports: ["websocket"], reconnection: true, forceNew: true, timeout: 60000 });
    await new Promise((resolve) => { socket.on("connect", resolve); socket.on("connect_error", resolve); });
    if (i % 2 === 0) socket.emit("USER_CONNECT", { username: String(firstId + 1 + i), maxCalls: 4 });
    sockets.push(socket);
  }
  let acks = 0, sent = 0, disconnects = 0, ackTimeouts = 0;
  const missing = [];
  for (const s of sockets) s.on("disconnect", () => disconnects++);
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", async (line) => {
    if (line.startsWith("calls ")) targets = line.slice(6).split(",").filter(Boolean);
    if (line !== "go") return;
    const pending = [];
    for (let i = 0; i < count; i++) {
      const socket = sockets[rnd(sockets.length)];
      const name = names[rnd(names.length)];
      const args = rnd(5) === 0 ? [] : [rnd(4) === 0 ? value(3) : payload(3)];
      sent++;
      if (rnd(2) === 0) {
        pending.push(socket.timeout(20000).emitWithAck(name, ...args).then(() => acks++, () => {
          ackTimeouts++;
          if (missing.length < 5) missing.push(`${name.slice(0, 20)} ${JSON.stringify(args).slice(0, 120)} connected=${socket.connected}`);
        }));
      } else {
        socket.emit(name, ...args);
      }
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(pending);
    // One frame above the transport limit: the bridge closes that socket, nothing else.
    const big = io(url, { path: "/callcontrol", transports: ["websocket"], reconnection: false, forceNew: true });
    await new Promise((resolve) => big.on("connect", resolve));
    const closed = new Promise((resolve) => big.on("disconnect", (reason) => resolve(reason)));
    big.emit("USER_CONNECT", { username: "x".repeat(200000), maxCalls: 1 });
    const reason = await Promise.race([closed, new Promise((r) => setTimeout(() => r("still open"), 5000))]);
    say({ event: "fuzzed", sent, acks, ackTimeouts, disconnects, oversized: reason, missing });
    process.exit(0);
  });
  say({ event: "ready" });
}
