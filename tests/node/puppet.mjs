// A socket.io-client 4.x puppet for the end-to-end tests: reads JSON commands on stdin,
// writes every event its sockets receive as one JSON line on stdout.
import { io } from "socket.io-client";
import { io as io45 } from "socket.io-client-4.5";
import readline from "node:readline";

const sockets = new Map();
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

// A UI as the public ones are written: the library's defaults, nothing but the path (and
// the given client version), and the headers a browser adds by itself, such as a basic-auth
// site's credentials.
function connectAsShipped(cmd) {
  const connectTo = cmd.client === "4.5" ? io45 : io;
  const headers = cmd.headers && Object.keys(cmd.headers).length ? { extraHeaders: cmd.headers } : {};
  return connectTo(cmd.url, { path: cmd.path ?? "/socket.io", forceNew: true, ...headers });
}

function connect(cmd) {
  const socket = cmd.asShipped ? connectAsShipped(cmd) : io(cmd.url, {
    path: cmd.path ?? "/socket.io",
    transports: cmd.transports ?? ["polling", "websocket"],
    auth: cmd.auth ?? {},
    extraHeaders: cmd.headers ?? {},
    // A UI that reconnects by itself, as agent UIs do, when asked to.
    reconnection: cmd.reconnection ?? false,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    forceNew: true,
    timeout: 10000,
  });
  if (cmd.asShipped) socket.on("connect", () => out({ id: cmd.id, event: "recovered", data: !!socket.recovered }));
  sockets.set(cmd.id, socket);
  socket.on("connect", () => out({ id: cmd.id, event: "connect", data: socket.io.engine.transport.name }));
  socket.on("connect_error", (e) => out({ id: cmd.id, event: "connect_error", data: e.message }));
  socket.on("disconnect", (reason) => out({ id: cmd.id, event: "disconnect", data: reason }));
  socket.onAny((event, ...args) => out({ id: cmd.id, event, data: args[0] ?? null }));
}

function emit(cmd) {
  const socket = sockets.get(cmd.id);
  const args = "data" in cmd ? [cmd.data] : [];
  if (cmd.ack) {
    socket.timeout(10000).emit(cmd.event, ...args, (err, reply) => out({ id: cmd.id, event: "ack:" + cmd.event, data: err ? { timeout: true } : reply }));
  } else {
    socket.emit(cmd.event, ...args);
  }
  if (cmd.close) socket.disconnect();
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.op === "connect") connect(cmd);
  else if (cmd.op === "emit") emit(cmd);
  else if (cmd.op === "close") sockets.get(cmd.id)?.disconnect();
  else if (cmd.op === "raw") sockets.get(cmd.id)?.io.engine.write(cmd.packet);
  // A network blip: the connection drops under the socket, which reconnects by itself.
  else if (cmd.op === "blip") sockets.get(cmd.id)?.io.engine.close();
});
rl.on("close", () => {
  for (const s of sockets.values()) s.disconnect();
  process.exit(0);
});
