// The tenants' portal: plain JavaScript over /portal/api/*, with the token from the link
// (`#token=`, kept in this tab's sessionStorage and taken out of the address bar). Every
// value from a receiver or a payload is put on the page as text (textContent), never as HTML.
"use strict";

const KEY = "hookgate.portal";
const nav = document.getElementById("nav");

async function api(method, path, body) {
  const token = sessionStorage.getItem(KEY);
  if (!token) {
    signedOut("Open the link you were given to manage your webhooks.");
    throw new ApiError(401, {});
  }
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/portal/api/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) {
    signedOut(data.message);
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** The token's claims (tenant, read-only), read for display: the server checks them. */
function claims() {
  try {
    const part = (sessionStorage.getItem(KEY) || "").slice(4).split(".")[0];
    return JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return {};
  }
}

function readOnly() {
  return claims().ro === true;
}

function signedOut(message) {
  sessionStorage.removeItem(KEY);
  nav.hidden = true;
  show(
    el("div", { class: "panel", id: "signed-out" },
      el("h2", {}, "This link no longer works"),
      el("p", {}, message || "Ask for a new link from the settings page you came from.")),
  );
}

function notice(text, kind) {
  return el("p", { class: kind || "ok", id: "notice", role: "status" }, text);
}

/** A one-time secret, with a button that takes it off the page. */
function secretPanel(what, secret) {
  const panel = el("div", { class: "panel", id: "secret" },
    el("p", {}, `${what}. Copy the signing secret now: it is shown this once.`),
    el("p", { class: "secret" }, secret));
  panel.append(el("button", { type: "button", onclick: () => panel.remove() }, "I have saved it"));
  return panel;
}

// --- endpoints (subscriptions) ---------------------------------------------------------

async function subscriptions(...above) {
  const [{ subscriptions: list }, { event_types: types }] = await Promise.all([
    api("GET", "subscriptions?stats=true"),
    api("GET", "event-types"),
  ]);
  const rows = list.map((s) => el("tr", { "data-id": s.id },
    el("td", {}, s.url, s.description ? el("div", { class: "muted" }, s.description) : null),
    el("td", {}, s.event_types.join(", ")),
    el("td", { class: s.enabled ? "ok" : "error" },
      s.enabled ? "enabled" : `disabled${s.disabled_reason ? ` (${s.disabled_reason})` : ""}`),
    el("td", { class: "num" }, `${s.stats?.delivered ?? 0} / ${s.stats?.dead ?? 0}`),
    el("td", {}, readOnly() ? null : actions(s))));
  show(
    ...above,
    el("h2", {}, "Endpoints"),
    list.length
      ? el("table", { id: "subscriptions" },
        el("thead", {}, el("tr", {}, ["URL", "Events", "State", "Delivered / failed", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows))
      : el("p", { class: "muted" }, "No endpoints yet."),
    readOnly() ? el("p", { class: "muted" }, "This link may look, not change.") : createForm(types),
  );
}

function actions(s) {
  const id = encodeURIComponent(s.id);
  const act = (label, run, cls) => el("button", { type: "button", class: cls, onclick: run }, label);
  const after = (promise, done) => promise.then(done, (e) => subscriptions(notice(e.message, "error")));
  return [
    act("Send test", () => after(api("POST", `subscriptions/${id}/test`, {}), (r) => subscriptions(
      notice(r.success ? `Test delivered: HTTP ${r.status} in ${r.latency_ms} ms` : `Test failed: ${r.status ? `HTTP ${r.status}` : r.error}`, r.success ? "ok" : "error")))),
    act(s.enabled ? "Disable" : "Enable", () => after(api("POST", `subscriptions/${id}/${s.enabled ? "disable" : "enable"}`),
      () => subscriptions(notice(s.enabled ? "Disabled." : "Enabled.")))),
    act("Rotate secret", (event) => event.target.replaceWith(rotateForm(s))),
    act("Delete", (event) => event.target.replaceWith(act("Really delete?", () => after(api("DELETE", `subscriptions/${id}`),
      () => subscriptions(notice("Deleted."))), "danger")), "danger"),
  ];
}

function rotateForm(s) {
  const overlap = el("select", { "aria-label": "keep the old secret for" },
    [["24h", "keep the old secret 24 hours"], ["1h", "keep the old secret 1 hour"], ["7d", "keep the old secret 7 days"], ["0s", "end the old secret now"]]
      .map(([value, label]) => el("option", { value }, label)));
  const rotate = () => api("POST", `subscriptions/${encodeURIComponent(s.id)}/rotate-secret`, { overlap: overlap.value })
    .then((r) => subscriptions(secretPanel("The secret was rotated", r.secret || r.public_key)),
      (e) => subscriptions(notice(e.message, "error")));
  return el("span", { class: "rotate" }, overlap, el("button", { type: "button", class: "primary", onclick: rotate }, "Rotate"));
}

function createForm(types) {
  const url = el("input", { type: "url", id: "new-url", placeholder: "https://example.com/webhooks", required: true });
  const description = el("input", { type: "text", id: "new-description", placeholder: "what it is for (optional)" });
  const boxes = types.filter((t) => !t.deprecated).map((t) => el("label", { title: t.description || "" },
    el("input", { type: "checkbox", value: t.name }), ` ${t.name}`));
  const all = el("label", {}, el("input", { type: "checkbox", value: "*" }), " all events");
  const typed = types.length ? null : el("input", { type: "text", id: "new-types", placeholder: "order.paid, order.*" });
  const create = () => {
    const chosen = typed
      ? typed.value.split(",").map((t) => t.trim()).filter(Boolean)
      : [all, ...boxes].map((l) => l.firstChild).filter((b) => b.checked).map((b) => b.value);
    const body = { url: url.value, event_types: chosen.includes("*") ? ["*"] : chosen };
    if (description.value) body.description = description.value;
    api("POST", "subscriptions", body).then(
      (s) => subscriptions(secretPanel(`Endpoint ${s.url} added`, s.secret || s.public_key)),
      (e) => subscriptions(notice(`Not added: ${e.message}`, "error")),
    );
  };
  return el("div", { class: "panel", id: "create" },
    el("h2", {}, "Add an endpoint"),
    el("label", {}, "URL", url),
    el("label", {}, "Description", description),
    el("div", { class: "types" }, "Events: ", typed || [all, ...boxes]),
    el("button", { type: "button", class: "primary", id: "create-button", onclick: create }, "Add endpoint"));
}

// --- deliveries ---------------------------------------------------------------------------

const STATES = [["", "waiting or failed"], ["dead", "failed for good"], ["delivered", "delivered"]];

function deliveryRow(d) {
  const last = d.attempts[d.attempts.length - 1] || {};
  return el("tr", { "data-id": d.id },
    el("td", {}, el("a", { href: `#delivery/${encodeURIComponent(d.id)}` }, d.id)),
    el("td", {}, d.event?.event_type || ""),
    el("td", {}, d.state),
    el("td", { class: "num" }, d.attempts.length),
    el("td", {}, last.status ? `HTTP ${last.status}` : last.error || ""),
    el("td", {}, time(d.delivered_ms || d.created_ms)));
}

async function deliveries(state, ...above) {
  state = state || "";
  const page = await api("GET", `deliveries${state ? `?state=${state}` : ""}`);
  const list = page.deliveries.sort((a, b) => (b.delivered_ms || b.created_ms) - (a.delivered_ms || a.created_ms));
  const select = el("select", { id: "state", onchange: () => deliveries(select.value).catch(() => {}) },
    STATES.map(([value, label]) => el("option", { value, selected: value === state }, label)));
  const replay = () => api("POST", "deliveries/replay", { states: ["dead"] }).then(
    (r) => deliveries(state, notice(`${r.replayed} sent again.`)),
    (e) => deliveries(state, notice(e.message, "error")));
  const body = el("tbody", {}, list.map(deliveryRow));
  // The delivered ones come a page at a time, newest first.
  let next = page.next;
  const older = el("button", { type: "button", id: "older", hidden: !next }, "Older");
  older.addEventListener("click", async () => {
    const more = await api("GET", `deliveries?state=${state}&after=${encodeURIComponent(next)}`);
    body.append(...more.deliveries.map(deliveryRow));
    next = more.next;
    older.hidden = !next;
  });
  show(
    ...above,
    el("h2", {}, "Deliveries"),
    el("div", { class: "filters" }, el("label", {}, "Show ", select),
      readOnly() ? null : el("button", { type: "button", id: "replay-dead", onclick: replay }, "Send failed ones again")),
    list.length
      ? el("table", { id: "deliveries" },
        el("thead", {}, el("tr", {}, ["Delivery", "Event", "State", "Attempts", "Last answer", "When"].map((h) => el("th", {}, h)))),
        body)
      : el("p", { class: "muted" }, "Nothing here."),
    older,
  );
}

async function delivery(id, ...above) {
  const d = await api("GET", `deliveries/${encodeURIComponent(id)}`);
  const retry = () => api("POST", `deliveries/${encodeURIComponent(id)}/retry`).then(
    () => delivery(id, notice("It will be sent again now.")),
    (e) => delivery(id, notice(e.message, "error")));
  const field = (name, value) => el("tr", {}, el("th", {}, name), el("td", {}, value));
  const attempts = d.attempts.map((a, i) => el("div", { class: "panel attempt" },
    el("h2", {}, `Attempt ${i + 1}: ${a.status ? `HTTP ${a.status}` : a.error || "no answer"} in ${a.latency_ms} ms, ${time(a.at_ms)}`),
    a.response ? el("pre", { class: "answer" }, a.response) : null,
    (a.request_headers || []).length
      ? el("table", { class: "headers" }, a.request_headers.map(([name, value]) => field(name, value)))
      : null));
  show(
    ...above,
    el("p", {}, el("a", { href: "#deliveries" }, "All deliveries")),
    el("h2", {}, `Delivery ${d.id}`),
    el("table", { id: "delivery" },
      field("Event", `${d.event?.event_type || ""} (${d.event?.event_id || ""})`),
      field("Endpoint", d.event?.subscription || ""),
      field("State", d.state),
      field("Created", time(d.created_ms))),
    readOnly() || d.state === "delivered" ? null : el("button", { type: "button", class: "primary", id: "retry", onclick: retry }, "Send again now"),
    el("h2", {}, "Attempts"),
    attempts.length ? attempts : el("p", { class: "muted" }, "Not attempted yet."),
    el("h2", {}, "Payload"),
    el("pre", { id: "payload" }, d.payload ?? ""),
  );
}

// --- navigation ---------------------------------------------------------------------------

function takeToken() {
  const found = location.hash.match(/^#token=([A-Za-z0-9_.-]+)$/);
  if (found) {
    sessionStorage.setItem(KEY, found[1]);
    history.replaceState(null, "", `${location.pathname}#subscriptions`);
  }
}

async function route() {
  takeToken();
  if (!sessionStorage.getItem(KEY)) return signedOut("Open the link you were given to manage your webhooks.");
  nav.hidden = false;
  document.getElementById("tenant").textContent = claims().tenant || "";
  const page = location.hash.slice(1) || "subscriptions";
  const section = page.startsWith("delivery") ? "deliveries" : "subscriptions";
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("current", a.getAttribute("href") === `#${section}`);
  try {
    if (page.startsWith("delivery/")) await delivery(decodeURIComponent(page.slice(9)));
    else if (page === "deliveries") await deliveries();
    else await subscriptions();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) show(notice(e.message, "error"));
  }
}

window.addEventListener("hashchange", route);
route();
