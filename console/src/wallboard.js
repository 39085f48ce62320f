// The wallboard: the queues a supervisor may see, one tile each, and the agents serving them
// by state, for a screen on the wall. It speaks the bridge's /supervisor namespace.
import { io } from "socket.io-client";

// Service-level colours, in percent of the first window's calls answered within the queue's
// threshold: green from GOOD_LEVEL up, amber from FAIR_LEVEL up, red below. Set them here
// for a different target.
const GOOD_LEVEL = 80;
const FAIR_LEVEL = 60;

// The bridge answers every request; one left unanswered this long counts as failed.
const REQUEST_TIMEOUT_MS = 10000;
// A wall display has nobody to press reload: a refused connection, a connection the bridge
// closed or a failed request is tried again after this long.
const RETRY_MS = 30000;
// Callers listed under a tile, longest waiting first; the count above says how many in all.
const CALLERS_SHOWN = 3;
// The sparkline's drawing box, stretched to the tile: one unit a minute across.
const SPARK_W = 59;
const SPARK_H = 20;
const SPARK_PAD = 1.5;

// Agents in a state the bridge could not tell ("unknown") share the last column, marked.
const COLUMNS = ["idle", "busy", "paused", "loggedOut"];

const $ = (id) => document.getElementById(id);
const queues = new Map(); // queue id -> { id, name, stats, calls: Map(call id -> call), tile }
const agents = new Map(); // agent id -> { data, queues: Set(queue id), element }
const errors = new Map(); // what failed -> a sentence for the people reading the wall
// Bumped at every connection and disconnection: answers and retries belonging to an
// earlier connection are dropped, the current one's snapshots replace what they carried.
let generation = 0;

// Opened as `/wallboard#token=...`, the token goes in the handshake and out of the address
// bar, kept for reloads of this tab under its own key (the same tab may have held an
// agent's token for the console). `?supervisor=9001` names the supervisor to a bridge that
// trusts it; with neither, a signing proxy in front of the bridge says who is asking.
const TOKEN_KEY = "converja-wallboard-token";
const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromUrl) {
  sessionStorage.setItem(TOKEN_KEY, fromUrl);
  history.replaceState(null, "", location.pathname + location.search);
}
const token = sessionStorage.getItem(TOKEN_KEY);
const supervisor = new URLSearchParams(location.search).get("supervisor");
const auth = token ? { token } : supervisor ? { supervisor } : null;

const socket = io("/supervisor", {
  path: "/callcontrol",
  transports: ["websocket", "polling"],
  ...(auth ? { auth } : {}),
});

function setStatus(text, online) {
  $("status").textContent = text;
  $("status").className = "status " + (online ? "online" : "offline");
  // Figures kept from a lost connection stay up, dimmed, rather than a blank wall.
  document.body.classList.toggle("stale", !online);
}

function setError(what, message) {
  if (message) errors.set(what, message);
  else errors.delete(what);
  $("error").textContent = [...errors.values()].join("\n");
  $("error").hidden = errors.size === 0;
}

// Times are the platform's epoch seconds; this page's clock may run a little behind it.
function secondsSince(since) {
  return Math.max(0, Math.floor(Date.now() / 1000 - since));
}

const two = (n) => String(n).padStart(2, "0");

function mmss(since) {
  const s = secondsSince(since);
  return `${two(Math.floor(s / 60))}:${two(s % 60)}`;
}

function hmmss(since) {
  const s = secondsSince(since);
  if (s < 3600) return mmss(since);
  return `${Math.floor(s / 3600)}:${two(Math.floor(s / 60) % 60)}:${two(s % 60)}`;
}

// Sends a request and resolves with its acknowledgement; a `<NAME>_ERROR` answer, or none in
// time, rejects with a sentence to show. Only the unanswered ones are worth `retry`ing soon.
async function request(name, payload) {
  let reply;
  try {
    reply = await socket.timeout(REQUEST_TIMEOUT_MS).emitWithAck(name, payload);
  } catch {
    throw Object.assign(new Error(`The bridge did not answer ${name} in time.`), { retry: true });
  }
  if (reply?.event === name) return reply;
  throw new Error(reply?.message || `The bridge refused ${name}.`);
}

function tileFor(id) {
  const tile = document.createElement("section");
  tile.className = "tile";
  tile.dataset.queue = id;
  tile.dataset.level = "none";
  tile.innerHTML = `
    <h2 class="name"></h2>
    <div class="figures">
      <div class="figure"><div class="waiting">—</div><div class="label">waiting</div></div>
      <div class="figure"><div class="longest">—</div><div class="label">longest wait</div></div>
    </div>
    <div class="figures small">
      <div class="figure"><div class="level">—</div><div class="label">service level <span class="window"></span></div></div>
      <div class="figure"><div class="answered">—</div><div class="label">answered</div></div>
      <div class="figure"><div class="abandoned">—</div><div class="label">abandoned</div></div>
    </div>
    <svg class="spark" viewBox="0 0 ${SPARK_W} ${SPARK_H}" preserveAspectRatio="none" aria-hidden="true">
      <polygon class="area-offered"></polygon>
      <polyline class="line-offered" vector-effect="non-scaling-stroke"></polyline>
      <polyline class="line-answered" vector-effect="non-scaling-stroke"></polyline>
    </svg>
    <div class="legend"><span class="key-offered">offered</span><span class="key-answered">answered</span><span class="peak"></span></div>
    <ol class="callers"></ol>`;
  return tile;
}

function levelClass(percent) {
  if (percent == null) return "none";
  if (percent >= GOOD_LEVEL) return "good";
  if (percent >= FAIR_LEVEL) return "fair";
  return "poor";
}

function renderTile(q) {
  const tile = q.tile;
  const s = q.stats;
  tile.querySelector(".name").textContent = q.name;
  if (!s) return;
  tile.dataset.loaded = "";
  const w = s.windows?.[0];
  // Coloured by the rounded figure shown, so 79.6% reads and colours as 80%.
  const level = w?.serviceLevel == null ? null : Math.round(w.serviceLevel * 100);
  tile.dataset.level = levelClass(level);
  tile.querySelector(".waiting").textContent = String(s.waiting);
  tile.querySelector(".level").textContent = level == null ? "—" : `${level}%`;
  tile.querySelector(".window").textContent = w ? `· ${w.minutes} min` : "";
  tile.querySelector(".answered").textContent = w ? String(w.answered) : "—";
  tile.querySelector(".abandoned").textContent = w ? String(w.abandoned) : "—";
  renderSpark(tile, s.history ?? []);
  tickTile(q);
}

function renderSpark(tile, history) {
  const peak = Math.max(0, ...history.map((m) => Math.max(m.offered, m.answered)));
  const scale = Math.max(1, peak);
  const x = (i) => (history.length > 1 ? (i * SPARK_W) / (history.length - 1) : SPARK_W / 2);
  const y = (v) => SPARK_PAD + (1 - v / scale) * (SPARK_H - 2 * SPARK_PAD);
  const points = (key) => history.map((m, i) => `${x(i).toFixed(2)},${y(m[key]).toFixed(2)}`).join(" ");
  const offered = points("offered");
  tile.querySelector(".line-offered").setAttribute("points", offered);
  tile.querySelector(".line-answered").setAttribute("points", points("answered"));
  tile.querySelector(".area-offered").setAttribute(
    "points",
    history.length ? `${x(0)},${SPARK_H} ${offered} ${x(history.length - 1)},${SPARK_H}` : "",
  );
  tile.querySelector(".peak").textContent = `last hour, peak ${peak}/min`;
}

function renderCallers(q) {
  const waiting = [...q.calls.values()].sort((a, b) => a.since - b.since);
  const list = q.tile.querySelector(".callers");
  list.replaceChildren(
    ...waiting.slice(0, CALLERS_SHOWN).map((call) => {
      const li = document.createElement("li");
      li.innerHTML = `<span class="caller"></span> <span class="wait"></span>`;
      li.querySelector(".caller").textContent = call.caller;
      li.querySelector(".wait").dataset.since = call.since;
      return li;
    }),
  );
  if (waiting.length > CALLERS_SHOWN) {
    const more = document.createElement("li");
    more.className = "more";
    more.textContent = `+${waiting.length - CALLERS_SHOWN} more`;
    list.appendChild(more);
  }
  tickTile(q);
}

// The parts of a tile that move with the clock.
function tickTile(q) {
  const s = q.stats;
  const longest = q.tile.querySelector(".longest");
  if (s) {
    longest.textContent = s.longestWaitSince == null ? "—" : mmss(s.longestWaitSince);
    // A caller waiting past the queue's threshold already counts against its service level.
    longest.classList.toggle("late", s.longestWaitSince != null && secondsSince(s.longestWaitSince) > s.thresholdSeconds);
  }
  for (const wait of q.tile.querySelectorAll(".callers .wait")) wait.textContent = mmss(Number(wait.dataset.since));
}

// Records what one queue says of an agent. An agent serving several queues has one card,
// showing the latest word from any of them.
function putAgent(queue, data) {
  let agent = agents.get(data.agent);
  if (!agent) {
    const li = document.createElement("li");
    li.className = "agent";
    li.dataset.agent = data.agent;
    li.innerHTML = `<span class="who"></span> <span class="time"></span> <span class="detail"></span>`;
    agent = { queues: new Set(), element: li };
    agents.set(data.agent, agent);
  }
  agent.data = data;
  agent.queues.add(queue);
  const li = agent.element;
  li.dataset.state = data.state;
  li.querySelector(".who").textContent = data.name || data.agent;
  li.querySelector(".detail").textContent =
    data.state === "busy" ? data.caller ?? ""
    : data.state === "paused" ? (data.reason == null ? "paused" : `pause reason ${data.reason}`)
    : data.state === "unknown" ? "state unknown"
    : "";
  tickAgent(agent);
}

function tickAgent(agent) {
  const since = agent.data.since;
  agent.element.querySelector(".time").textContent = since == null ? "" : hmmss(since);
}

// Forgets agents no queue on the wall lists any more.
function pruneAgents() {
  for (const [id, agent] of agents) {
    if (agent.queues.size === 0) {
      agent.element.remove();
      agents.delete(id);
    }
  }
}

// Puts every card in its state's column, longest in that state first.
function layoutAgents() {
  const columns = new Map(COLUMNS.map((state) => [state, []]));
  for (const agent of agents.values()) (columns.get(agent.data.state) ?? columns.get("loggedOut")).push(agent);
  for (const state of COLUMNS) {
    const list = columns.get(state).sort(
      (a, b) =>
        (a.data.since ?? Infinity) - (b.data.since ?? Infinity) ||
        (a.data.name || a.data.agent).localeCompare(b.data.name || b.data.agent),
    );
    $("agents-" + state).replaceChildren(...list.map((agent) => agent.element));
    $("count-" + state).textContent = String(list.length);
  }
}

function dropQueue(id) {
  const q = queues.get(id);
  if (!q) return;
  q.tile.remove();
  queues.delete(id);
  setError(`queue ${id}`, null);
  for (const agent of agents.values()) agent.queues.delete(id);
  pruneAgents();
}

// Lays the tiles out as the bridge listed the queues, keeping the figures of those already up.
function syncQueues(list) {
  const listed = new Set(list.map((q) => q.id));
  for (const id of [...queues.keys()]) if (!listed.has(id)) dropQueue(id);
  for (const { id, name } of list) {
    let q = queues.get(id);
    if (!q) {
      q = { id, name, stats: null, calls: new Map(), tile: tileFor(id) };
      queues.set(id, q);
    }
    q.name = name;
    $("tiles").appendChild(q.tile);
    renderTile(q);
  }
  $("no-queues").hidden = list.length > 0;
  layoutAgents();
}

// A snapshot replaces all the wall knew of its queue: figures, waiting calls, and which
// agents serve it.
function applySnapshot(snapshot) {
  const q = queues.get(snapshot.queue);
  if (!q) return;
  q.name = snapshot.name || q.name;
  q.stats = snapshot.stats;
  q.calls = new Map(snapshot.calls.map((call) => [call.call, call]));
  for (const agent of agents.values()) agent.queues.delete(q.id);
  for (const agent of snapshot.agents) putAgent(q.id, agent);
  pruneAgents();
  renderTile(q);
  renderCallers(q);
  layoutAgents();
}

async function subscribe(id, mine) {
  try {
    const { snapshot } = await request("SUBSCRIBE", { queue: id });
    if (mine !== generation) return;
    setError(`queue ${id}`, null);
    applySnapshot(snapshot);
  } catch (e) {
    if (mine !== generation || !queues.has(id)) return;
    setError(`queue ${id}`, `${queues.get(id).name}: ${e.message}`);
    setTimeout(() => mine === generation && subscribe(id, mine), RETRY_MS);
  }
}

// After every connection, the first one or one socket.io-client made again by itself: the
// bridge starts each connection with no subscriptions, so all are asked for anew and their
// snapshots replace what the wall showed.
async function load() {
  const mine = ++generation;
  try {
    const { queues: list } = await request("QUEUES", {});
    if (mine !== generation) return;
    setError("queues", null);
    syncQueues(list);
    for (const { id } of list) subscribe(id, mine);
  } catch (e) {
    if (mine !== generation) return;
    setError("queues", e.message);
    setTimeout(() => mine === generation && load(), RETRY_MS);
  }
}

function connectLater() {
  setTimeout(() => {
    if (!socket.connected && !socket.active) socket.connect();
  }, RETRY_MS);
}

socket.on("connect", () => {
  setStatus("connected", true);
  for (const what of [...errors.keys()]) setError(what, null);
  load();
});
socket.on("disconnect", (reason) => {
  generation++;
  setStatus("disconnected, retrying…", false);
  // socket.io-client reconnects by itself unless the bridge itself ended the connection.
  if (reason === "io server disconnect") connectLater();
});
socket.on("connect_error", (err) => {
  // While active, socket.io-client is still trying (the bridge is down or restarting);
  // otherwise the bridge refused this wallboard and says why, and only this page tries again.
  if (socket.active) {
    setStatus("cannot reach the bridge, retrying…", false);
    return;
  }
  setStatus("not connected", false);
  setError("connection", err.message);
  connectLater();
});

socket.on("QUEUE_STATS", (stats) => {
  const q = queues.get(stats.queue);
  if (!q) return;
  q.stats = stats;
  renderTile(q);
});
socket.on("QUEUE_CALL", (call) => {
  const q = queues.get(call.queue);
  if (!q) return;
  if (call.state === "waiting") q.calls.set(call.call, { call: call.call, caller: call.caller, since: call.since });
  else q.calls.delete(call.call);
  renderCallers(q);
});
socket.on("AGENT_STATE", ({ queue, ...agent }) => {
  if (!queues.has(queue)) return;
  putAgent(queue, agent);
  layoutAgents();
});

function tick() {
  $("clock").textContent = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  for (const q of queues.values()) tickTile(q);
  for (const agent of agents.values()) tickAgent(agent);
}
setInterval(tick, 1000);
tick();
