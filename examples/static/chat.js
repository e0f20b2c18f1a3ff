// The chat page's script: one WebSocket to the endpoint /chat, on the page's
// own origin (wss:// when the page came over https://). The server sends JSON
// objects {"from": NAME, "text": TEXT}; "from" is null for its notices (joins,
// leaves, and the welcome, which carries this page's name in "you"). What the
// user types is sent as a text message, as typed.
"use strict";

const log = document.getElementById("log");
const status = document.getElementById("status");
const form = document.getElementById("compose");
const input = document.getElementById("text");
const button = form.querySelector("button");
let me = null;

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

function show(message) {
  const item = document.createElement("li");
  if (message.from === null) {
    item.className = "notice";
    item.textContent = message.text;
  } else {
    item.dataset.from = message.from;
    if (message.from === me) {
      item.className = "mine";
    }
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = message.from + ":";
    item.append(from, document.createTextNode(message.text));
  }
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(item);
  if (atBottom) {
    log.scrollTop = log.scrollHeight;
  }
}

const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + location.host + "/chat");

socket.addEventListener("open", () => {
  setStatus("open", "Connected to " + socket.url);
  input.disabled = false;
  button.disabled = false;
  input.focus();
});

socket.addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  if (message.you) {
    me = message.you;
    status.dataset.me = me;
    setStatus("open", "Connected to " + socket.url + " as " + me);
  }
  show(message);
});

socket.addEventListener("close", (event) => {
  const why = event.reason ? ", " + event.reason : "";
  setStatus("closed", "Disconnected (code " + event.code + why + "). Reload the page to join again.");
  input.disabled = true;
  button.disabled = true;
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  if (text.trim() && socket.readyState === WebSocket.OPEN) {
    socket.send(text);
    input.value = "";
  }
  input.focus();
});
