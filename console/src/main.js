// The agent console: logs an agent in over socket.io, shows the calls the platform gives it,
// and ends or rejects them. It speaks exactly the contract any agent UI speaks.
import { io } from "socket.io-client";

const $ = (id) => document.getElementById(id);
const calls = new Map(); // callId -> { data, since, element }
let username = null;

// With `[auth] mode = "jwt"` (or an HMAC token), the page is opened as `/#token=...`: the
// token goes in the handshake and out of the address bar, kept for reloads of this tab.
const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromUrl) {
  sessionStorage.setItem("converja-token", fromUrl);
  history.replaceState(null, "", location.pathname + location.search);
}
const token = sessionStorage.getItem("converja-token");

const socket = io({
  path: "/callcontrol",
  transports: ["websocket", "polling"],
  ...(token ? { auth: { token } } : {}),
});

function setStatus(text, online) {
  $("status").textContent = text;
  $("status").className = "status " + (online ? "online" : "offline");
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function elapsed(since) {
  const s = Math.max(0, Math.floor((Date.now() - since) / 1000));
  const mm = String(Math.floor(s / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return `${mm}:${ss}`;
}

function render() {
  $("empty").hidden = calls.size > 0;
  $("capacity").textContent = `${calls.size} call${calls.size === 1 ? "" : "s"}`;
}

function addCall(data) {
  if (calls.has(data.callId)) return;
  const li = document.createElement("li");
  li.className = "call";
  li.dataset.callId = data.callId;
  li.innerHTML = `
    <div class="caller"></div>
    <div class="meta"><span class="media"></span><span class="service"></span><span class="elapsed"></span></div>
    <div class="actions"><button class="danger end">End call</button><button class="secondary reject">Reject</button></div>`;
  li.querySelector(".caller").textContent = data.caller;
  li.querySelector(".media").textContent = data.media;
  li.querySelector(".service").textContent = data.service;
  const since = Date.parse(data.startDate) || Date.now();
  li.querySelector(".end").onclick = (e) => {
    e.target.disabled = true;
    socket.emit("END_CALL", { callId: data.callId });
  };
  li.querySelector(".reject").onclick = () => {
    socket.emit("NEW_CALL_ERROR", { callId: data.callId, error: "rejected by the agent" });
    removeCall(data.callId);
  };
  $("calls").appendChild(li);
  calls.set(data.callId, { data, since, element: li });
  socket.emit("NEW_CALL_ANSWERED", { callId: data.callId });
  render();
}

function removeCall(callId) {
  const call = calls.get(callId);
  if (!call) return;
  call.element.remove();
  calls.delete(callId);
  render();
}

function showDesk(name) {
  username = name;
  $("agent-name").textContent = name;
  $("login").hidden = !!name;
  $("desk").hidden = !name;
  if (!name) {
    for (const id of [...calls.keys()]) removeCall(id);
  }
}

$("login-form").onsubmit = (e) => {
  e.preventDefault();
  showError("");
  $("login-button").disabled = true;
  socket.emit("USER_CONNECT", { username: $("username").value.trim(), maxCalls: Number($("max-calls").value) });
};
$("logout-button").onclick = () => socket.emit("USER_DISCONNECT", { username });

// USER_CONNECT goes out once, at login: after a reconnect socket.io-client hands the bridge
// back the session id it was given and what it was shown, and the bridge puts the session
// back, sends what was missed, or says USER_DISCONNECTED if the session ended meanwhile.
socket.on("connect", () => setStatus("connected", true));
socket.on("disconnect", () => setStatus("disconnected, retrying…", false));
socket.on("connect_error", (e) => setStatus("cannot connect: " + e.message, false));
socket.on("USER_CONNECTED", (d) => {
  $("login-button").disabled = false;
  showDesk(d.username);
});
socket.on("USER_CONNECTION_ERROR", (d) => {
  $("login-button").disabled = false;
  showError(d.error);
});
socket.on("USER_DISCONNECTED", () => showDesk(null));
socket.on("USER_DISCONNECTION_ERROR", (d) => showError(d.error));
socket.on("NEW_CALL", addCall);
socket.on("CALL_ENDED", (d) => removeCall(d.callId));
socket.on("END_CALL_ERROR", (d) => {
  showError(d.error);
  const call = calls.get(d.callId);
  if (call) call.element.querySelector(".end").disabled = false;
});

setInterval(() => {
  for (const call of calls.values()) call.element.querySelector(".elapsed").textContent = elapsed(call.since);
}, 1000);
render();
