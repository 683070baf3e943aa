// The pushjet-bridge console's own script: the history's live list, "Copy as curl", the
// template playground's live preview and the live inbox. No library. Everything shown is set as text (textContent), never as HTML.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// A notification as a phone shows it: title, message, then importance and link.
function phoneCard(item) {
  const card = element("div", "phone");
  card.setAttribute("role", "group");
  card.setAttribute("aria-label", "Notification");
  card.appendChild(element("p", "phone-title", item.title || "(no title)"));
  card.appendChild(element("p", "phone-message", item.message));
  const meta = element("p", "phone-meta", "Importance " + item.importance);
  if (item.link) {
    meta.appendChild(document.createTextNode(" · "));
    const link = element("a", null, item.link);
    link.href = item.link;
    link.rel = "noreferrer noopener";
    link.target = "_blank";
    meta.appendChild(link);
  }
  card.appendChild(meta);
  return card;
}

function setupPlayground(form) {
  const route = form.querySelector("#pg-route");
  const source = form.querySelector("#pg-source");
  const event = form.querySelector("#pg-event");
  const example = form.querySelector("#pg-example");
  const payload = form.querySelector("#pg-payload");
  const template = form.querySelector("#pg-template");
  const templateName = form.querySelector("#pg-template-name");
  const save = form.querySelector("#pg-save");
  const copy = form.querySelector("#pg-copy");
  const copied = form.querySelector("#pg-copied");
  const result = document.getElementById("pg-result");
  const error = document.getElementById("pg-error");
  const about = document.getElementById("pg-about");
  let timer = null;
  let sequence = 0;
  let edited = false;

  function showError(text, line) {
    error.textContent = line ? "Line " + line + ": " + text : text;
    error.hidden = false;
    result.replaceChildren();
    about.textContent = "";
  }

  async function render() {
    const asked = ++sequence;
    const body = {
      route: route.value,
      source: source.value,
      event: event.value,
      payload: payload.value,
      template: edited ? template.value : null,
    };
    let response;
    try {
      response = await fetch(form.dataset.preview, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify(body),
      });
    } catch (failure) {
      if (asked === sequence) showError("The bridge did not answer: " + failure.message);
      return;
    }
    if (asked !== sequence) return;
    const text = await response.text();
    let answer = null;
    try { answer = JSON.parse(text); } catch (ignored) { answer = null; }
    if (!response.ok || !answer) {
      showError(answer && answer.error ? answer.error : text.trim(), answer ? answer.line : null);
      return;
    }
    error.hidden = true;
    error.textContent = "";
    if (answer.toml !== null && answer.toml !== undefined) template.value = answer.toml;
    templateName.textContent = answer.template
      ? "Template " + answer.template + " (" + answer.source + ", event " + answer.event +
        (answer.action ? ", action " + answer.action : "") + ")"
      : "This payload makes no notification, so no template applies.";
    if (answer.save_as) save.textContent = answer.save_as;
    const cards = answer.notifications.map(function (item) {
      if (item.skipped) return element("p", "note", "Skipped: the template rendered an empty message.");
      const card = phoneCard(item);
      if (item.error) card.appendChild(element("p", "phone-meta", "Template error, fallback shown: " + item.error));
      return card;
    });
    result.replaceChildren.apply(result, cards);
    about.textContent = answer.filtered ? answer.filtered
      : answer.notifications.length + " notification(s), rendered " + new Date().toLocaleTimeString();
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(render, 250);
  }

  function restart() {
    edited = false;
    render();
  }

  route.addEventListener("change", function () {
    const option = route.selectedOptions[0];
    const match = option && option.value ? /\(([^)]+)\)$/.exec(option.textContent) : null;
    if (match) source.value = match[1];
    restart();
  });
  source.addEventListener("change", restart);
  event.addEventListener("input", function () { edited = false; soon(); });
  payload.addEventListener("input", soon);
  template.addEventListener("input", function () { edited = true; soon(); });
  example.addEventListener("change", async function () {
    if (!example.value) return;
    if (example.value.indexOf("history:") === 0) {
      const kept = await fetch(form.dataset.kept + encodeURIComponent(example.value.slice(8)) + "/body",
        { credentials: "same-origin" });
      if (!kept.ok) { showError("The kept body could not be loaded."); return; }
      const body = await kept.json();
      payload.value = body.body;
      if (source.querySelector('option[value="' + body.source + '"]')) source.value = body.source;
      event.value = body.event;
      restart();
      return;
    }
    const response = await fetch(form.dataset.examples + encodeURIComponent(example.value),
      { credentials: "same-origin" });
    if (!response.ok) { showError("The example could not be loaded."); return; }
    payload.value = await response.text();
    const name = example.value.replace(/\.json$/, "").split(".");
    source.value = name[0];
    event.value = name.length > 1 ? name[1] : (name[0] === "github" || name[0] === "gitea" ? "push" : "");
    restart();
  });
  copy.addEventListener("click", async function () {
    try {
      await navigator.clipboard.writeText(template.value);
    } catch (ignored) {
      template.select();
      document.execCommand("copy");
    }
    copied.textContent = "Copied.";
    setTimeout(function () { copied.textContent = ""; }, 3000);
  });
  form.addEventListener("submit", function (submitted) { submitted.preventDefault(); render(); });
  render();
}

function setupInbox(form) {
  const device = form.querySelector("#device");
  const notify = form.querySelector("#inbox-notify");
  const status = document.getElementById("inbox-status");
  const list = document.getElementById("inbox-messages");
  let stream = null;

  if (!("Notification" in window)) notify.hidden = true;
  notify.addEventListener("click", async function () {
    const permission = await Notification.requestPermission();
    status.textContent = permission === "granted"
      ? "Browser notifications are on for this page."
      : "Browser notifications were not allowed.";
  });

  form.addEventListener("submit", function (submitted) {
    submitted.preventDefault();
    if (!form.reportValidity()) return;
    if (stream) stream.close();
    list.replaceChildren();
    const uuid = device.value.trim();
    stream = new EventSource(form.dataset.stream + encodeURIComponent(uuid) + "/sse?since=none");
    status.textContent = "Connecting…";
    stream.addEventListener("open", function () {
      status.textContent = "Watching " + uuid + ": new messages appear below.";
    });
    stream.addEventListener("error", function () {
      status.textContent = "The stream was interrupted; the browser tries again by itself.";
    });
    stream.addEventListener("message", function (received) {
      let message;
      try { message = JSON.parse(received.data); } catch (ignored) { return; }
      if (message.event !== "message") return;
      const item = element("li", "card");
      item.appendChild(phoneCard({
        title: message.title, message: message.message,
        importance: message.priority || 3, link: message.click,
      }));
      item.appendChild(element("p", "note", "Received " + new Date(message.time * 1000).toLocaleString()));
      list.insertBefore(item, list.firstChild);
      if ("Notification" in window && Notification.permission === "granted") {
        new Notification(message.title || "pushjet-bridge", { body: message.message });
      }
    });
  });
  if (device.value) form.requestSubmit();
}

// A history record's line, as the server renders it in templates/history.html.
function recordLine(record) {
  const item = element("li", "record fresh");
  item.dataset.id = record.id;
  const link = element("a", "record-title", record.title);
  link.href = "/console/history/" + record.id;
  item.appendChild(link);
  item.appendChild(element("span", "state state-" + record.state, record.state));
  const at = new Date(record.at).toISOString().replace(/\.\d+Z$/, "Z");
  const event = record.action ? record.event + " (" + record.action + ")" : record.event;
  item.appendChild(element("span", "record-meta", at + " · " + record.route + " · " + record.source +
    " " + event + " · " + record.notifications + " notification(s)"));
  return item;
}

// The history's newest page: new records are added at the top and states kept current, from
// the console's session-checked stream of the history's changes.
function setupHistory(list) {
  const status = document.getElementById("history-live");
  const wanted = list.dataset;
  function shown(record) {
    if (wanted.source && record.source !== wanted.source) return false;
    if (wanted.event && record.event !== wanted.event) return false;
    if (wanted.state && record.state !== wanted.state) return false;
    if (wanted.q && record.title.toLowerCase().indexOf(wanted.q.toLowerCase()) < 0) return false;
    return true;
  }
  const stream = new EventSource(list.dataset.stream);
  stream.addEventListener("open", function () {
    status.textContent = "Live: new webhooks appear at the top as they arrive.";
  });
  stream.addEventListener("error", function () {
    status.textContent = "The live stream was interrupted; the browser tries again by itself.";
  });
  function change(received) {
    let record;
    try { record = JSON.parse(received.data); } catch (ignored) { return; }
    // Record ids pass 2^53: JSON.parse rounds them, so the id is read from the text itself.
    const id = /"id":(\d+)/.exec(received.data);
    if (!id) return;
    record.id = id[1];
    const present = list.querySelector('li[data-id="' + record.id + '"]');
    if (present) {
      present.replaceWith(recordLine(record));
      return;
    }
    if (received.type !== "record" || !shown(record)) return;
    const empty = document.getElementById("history-empty");
    if (empty) empty.remove();
    list.insertBefore(recordLine(record), list.firstChild);
  }
  stream.addEventListener("record", change);
  stream.addEventListener("state", change);
  stream.addEventListener("lagged", function () {
    status.textContent = "Some changes were missed: reload the page to see them all.";
  });
}

// "Copy as curl": copies the command shown in the element the button names.
function setupCopy(button) {
  const source = document.getElementById(button.dataset.copy);
  const done = document.getElementById(button.id + "-done");
  button.addEventListener("click", async function () {
    try {
      await navigator.clipboard.writeText(source.textContent);
      done.textContent = "Copied.";
    } catch (ignored) {
      window.getSelection().selectAllChildren(source);
      done.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
    }
    setTimeout(function () { done.textContent = ""; }, 4000);
  });
}

document.addEventListener("DOMContentLoaded", function () {
  const records = document.getElementById("history-records");
  if (records && records.dataset.stream) setupHistory(records);
  document.querySelectorAll("button[data-copy]").forEach(setupCopy);
  const playground = document.getElementById("playground");
  if (playground) setupPlayground(playground);
  const inbox = document.getElementById("inbox");
  if (inbox) setupInbox(inbox);
});
