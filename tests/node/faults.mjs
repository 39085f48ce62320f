// Agent UIs for the fault runner (benches/faults.rs).
//   node faults.mjs agents URL COUNT FIRST_ID   N agent UIs that keep what they are shown;
//                                                stdin "view" prints {agent: [callIds]}.
//   node faults.mjs churn URL CYCLES FIRST_ID   connect, USER_CONNECT, then USER_DISCONNECT
//                                                or just close (every other cycle), N times.
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
    socket.on("USER_CONNECTED", () => resolve(socket));
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
  const parallel = 50;
  let done = 0;
  const cycle = async (i) => {
    const username = String(firstId + (i % 100));
    const socket = await login(username + "", { keep: false });
    await new Promise((resolve) => {
      if (i % 2 === 0) {
        socket.once("USER_DISCONNECTED", resolve);
        socket.once("USER_DISCONNECTION_ERROR", (d) => { errors.push(d.error); resolve(); });
        socket.emit("USER_DISCONNECT", { username });
      } else resolve();
    });
    socket.close();
    done++;
  };
  for (let i = 0; i < count; i += parallel) {
    // One username per lane: a lane's cycles for the same agent run one after the other.
    await Promise.all(Array.from({ length: Math.min(parallel, count - i) }, (_, k) => cycle(i + k)));
  }
  say({ event: "done", cycles: done, errors: errors.length, firstError: errors[0] ?? null });
  process.exit(0);
}
