// The showcase's script: served by the server's static mount (not by the
// WSGI application), announced with 103 Early Hints before the index page.
// It asks the application for its environ and shows how this page arrived.
"use strict";

async function showFacts() {
  const facts = document.getElementById("facts");
  if (!facts) {
    return;
  }
  const response = await fetch("/env");
  const environ = await response.json();
  const rows = [
    ["Protocol", environ.SERVER_PROTOCOL],
    ["WSGI version", environ["wsgi.version"].join(".")],
    ["Terminated input", String(environ["wsgi.input_terminated"])],
    ["URL scheme", environ["wsgi.url_scheme"]],
  ];
  const list = document.createElement("dl");
  for (const [name, value] of rows) {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.textContent = value;
    list.append(term, detail);
  }
  facts.replaceChildren(list);
}

showFacts().catch((error) => {
  const facts = document.getElementById("facts");
  if (facts) {
    facts.textContent = "Could not read /env: " + error;
  }
});
