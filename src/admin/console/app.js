// hookgate's console: plain JavaScript over the admin API. Every value from a webhook or a
// receiver is put on the page as text (textContent), never as HTML.
"use strict";

const TOKEN = "hookgate.token";
const nav = document.getElementById("nav");

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN);
  if (!token) throw new ApiError(401, { error: "unauthorized" });
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/admin/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) {
    signOut("The admin token was refused.");
    throw new ApiError(response.status, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

function errorLine(e) {
  return el("p", { class: "error", role: "alert" }, e.message);
}

/** A subscription's health from its counts: failing since its last error (when that is
 *  newer than its last success), delivering, or nothing sent yet. */
function health(stats) {
  const s = stats || {};
  const failing = s.last_error_at && (!s.last_success_at || s.last_error_at > s.last_success_at);
  const text = failing
    ? `failing: ${s.last_error} at ${time(s.last_error_at)} (${s.failed_attempts} failed attempts, ${s.dead} dead)`
    : s.last_success_at
      ? `ok: last delivered ${time(s.last_success_at)} (${s.delivered} delivered)`
      : "nothing sent yet";
  return el("td", { class: failing ? "health error" : "health" }, text);
}

/** Asks before a secret is rotated, and for how long the old secrets keep signing:
 *  resolves to the overlap ("24h", "0s"...), or null on Cancel. */
function rotateBox(container, id) {
  return new Promise((resolve) => {
    const overlap = el("select", { name: "overlap" },
      [["24h", "24 hours (the default)"], ["1h", "1 hour"], ["7d", "7 days"], ["0s", "none: the old secret stops now"]]
        .map(([value, label]) => el("option", { value }, label)));
    const box = el(
      "div",
      { class: "panel", role: "dialog", "aria-label": "rotate secret" },
      el("p", {}, `Rotate the signing secret of ${id}? Deliveries are signed with the new secret and, during the overlap, with the old ones too.`),
      el("label", {}, "overlap ", overlap),
      " ",
      el("button", { class: "primary", onclick: () => { box.remove(); resolve(overlap.value); } }, "Rotate"),
      " ",
      el("button", { onclick: () => { box.remove(); resolve(null); } }, "Cancel"),
    );
    container.replaceChildren(box);
  });
}

/** An in-page confirmation: resolves true on Confirm. */
function confirmBox(container, message) {
  return new Promise((resolve) => {
    const box = el(
      "div",
      { class: "panel", role: "dialog", "aria-label": "confirm" },
      el("p", {}, message),
      el("button", { class: "primary", onclick: () => { box.remove(); resolve(true); } }, "Confirm"),
      " ",
      el("button", { onclick: () => { box.remove(); resolve(false); } }, "Cancel"),
    );
    container.prepend(box);
  });
}

// --- sign-in -----------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN);
  nav.hidden = true;
  signIn(message);
}

function signIn(message) {
  const input = el("input", { type: "password", id: "token", autocomplete: "off", placeholder: "admin.token", required: true });
  const form = el(
    "form",
    { class: "signin", id: "signin" },
    el("h2", {}, "Sign in"),
    el("p", { class: "muted" }, "The admin token (admin.token in hookgate's config). It is kept for this tab only."),
    input,
    el("button", { class: "primary", type: "submit" }, "Sign in"),
    message ? el("p", { class: "error", role: "alert" }, message) : null,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN, input.value);
    try {
      await api("GET", "refusals?limit=1");
    } catch (e) {
      if (e.status !== 401 && e.status !== 403) signOut(e.message);
      return;
    }
    nav.hidden = false;
    if (!location.hash || location.hash === "#signin") location.hash = "#overview";
    else route();
  });
  show(form);
  input.focus();
}

// --- overview ----------------------------------------------------------------------

function card(label, value, id) {
  return el("div", { class: "card", id }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
}

function chart(points) {
  const width = 720, height = 160, pad = 24;
  const series = ["forwarded", "refused", "delivered"];
  const max = Math.max(1, ...points.flatMap((p) => series.map((s) => p[s] || 0)));
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("id", "chart");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "the last hour, per minute");
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(1, points.length - 1);
  const y = (v) => height - pad - (v * (height - 2 * pad)) / max;
  for (const name of series) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("class", name);
    line.setAttribute("points", points.map((p, i) => `${x(i).toFixed(1)},${y(p[name] || 0).toFixed(1)}`).join(" "));
    svg.append(line);
  }
  for (const [text, at, anchor] of [["-60 min", pad, "start"], ["now", width - pad, "end"]]) {
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", at);
    label.setAttribute("y", height - 6);
    label.setAttribute("text-anchor", anchor);
    label.textContent = text;
    svg.append(label);
  }
  const top = document.createElementNS(ns, "text");
  top.setAttribute("x", pad);
  top.setAttribute("y", 14);
  top.textContent = `${max} per minute`;
  svg.append(top);
  return svg;
}

function refusedText(refused) {
  const entries = Object.entries(refused || {});
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(", ") : "none";
}

async function overview(render) {
  const data = await api("GET", "overview");
  const rows = data.inbound.map((r) =>
    el(
      "tr",
      {},
      el("td", {}, r.route),
      el("td", { class: "num" }, r.last_minute.requests),
      el("td", { class: "num" }, r.last_hour.requests),
      el("td", { class: "num" }, r.last_hour.forwarded),
      el("td", { class: "num" }, r.last_hour.duplicates),
      el("td", {}, refusedText(r.last_hour.refused)),
    ),
  );
  const out = data.outbound || {};
  const queue = out.queue || {};
  const delivered = (out.last_minute && out.last_minute.delivered) || 0;
  const listOf = (items, name) =>
    (items || []).length
      ? el("ul", {}, items.map((i) => el("li", {}, `${i[name]}: ${i.reason || ""}`)))
      : el("p", { class: "muted" }, "none");
  render(
    el("h2", {}, "Inbound, per route"),
    el(
      "table",
      { id: "inbound" },
      el("thead", {}, el("tr", {}, ["route", "last minute", "last hour", "forwarded", "duplicates", "refused (last hour)"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no requests yet"))),
    ),
    el("h2", {}, "The last hour"),
    el("div", { class: "legend" }, el("span", { class: "forwarded" }, "forwarded"), el("span", { class: "refused" }, "refused"), el("span", { class: "delivered" }, "delivered")),
    chart(data.chart),
    el("h2", {}, "Outbound"),
    el(
      "div",
      { class: "cards" },
      card("pending", queue.pending ?? 0, "queue-pending"),
      card("scheduled", queue.scheduled ?? 0, "queue-scheduled"),
      card("dead letters", queue.dead ?? 0, "queue-dead"),
      card("deliveries/s (last minute)", (delivered / 60).toFixed(1), "delivery-rate"),
      card("open circuits", (out.open_circuits || []).length, "open-circuits"),
    ),
    el("h2", {}, "Open circuits"),
    el("div", { id: "open-circuit-list" }, listOf((out.open_circuits || []).map((c) => ({ ...c, reason: `${c.reason || "failing"} (held back until ${time(c.until_ms)})` })), "name")),
    el("h2", {}, "Disabled endpoints"),
    listOf(out.disabled_endpoints, "name"),
    el("h2", {}, "Paused inbound routes"),
    el("div", { id: "paused-routes" }, listOf((data.paused_routes || []).map((name) => ({ name, reason: "webhooks are stored, none sent to the app" })), "name")),
    el("h2", {}, "Disabled subscriptions"),
    listOf(out.disabled_subscriptions, "id"),
  );
}

// --- refusals ----------------------------------------------------------------------

async function refusals(render, params) {
  const data = await api("GET", `refusals${query({ route: params.get("route"), reason: params.get("reason"), limit: 500 })}`);
  const route = el("input", { name: "route", value: params.get("route") || "", placeholder: "any" });
  const reason = el("input", { name: "reason", value: params.get("reason") || "", placeholder: "any" });
  const filters = el(
    "form",
    { class: "filters", id: "refusal-filters" },
    el("label", {}, "route", route),
    el("label", {}, "reason", reason),
    el("button", { type: "submit" }, "Filter"),
  );
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#refusals${query({ route: route.value, reason: reason.value })}`;
  });
  const rows = data.refusals.map((r) =>
    el(
      "tr",
      {},
      el("td", {}, time(r.at_ms)),
      el("td", {}, r.route),
      el("td", { class: "reason" }, r.reason),
      el("td", { class: "num" }, r.status),
      el("td", {}, r.source || ""),
      el("td", { class: "delivery-id" }, r.delivery_id || ""),
      el("td", {}, (r.headers || []).join(", ")),
    ),
  );
  render(
    el("h2", {}, "Recent refusals"),
    el("p", { class: "muted" }, `The last ${data.kept} refusals are kept in memory: never bodies, signatures or secrets.`),
    filters,
    el(
      "table",
      { id: "refusals" },
      el("thead", {}, el("tr", {}, ["time", "route", "reason", "status", "source", "delivery id (as claimed)", "headers present"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no refusals"))),
    ),
  );
}

// --- deliveries --------------------------------------------------------------------

const DELIVERY_FILTERS = ["state", "endpoint", "subscription", "tenant", "event_type", "since", "until"];

function lastStatus(d) {
  const last = (d.attempts || [])[d.attempts.length - 1];
  if (!last) return "";
  return last.status ? String(last.status) : last.error || "";
}

function target(d) {
  if (d.event) return `${d.event.subscription} (${d.event.event_type})`;
  if (d.destination && d.destination.url) return `${d.destination.name} (${new URL(d.destination.url).host})`;
  return d.endpoint;
}

/** A payload as text, pretty-printed when it is JSON. */
function payloadText(d) {
  try {
    return JSON.stringify(JSON.parse(d.payload), null, 2);
  } catch {
    return d.payload;
  }
}

/** The filters of the deliveries page as the API takes them (times in unix ms). */
function deliveryFilter(params) {
  const ms = (name) => (params.get(name) ? String(Date.parse(params.get(name))) : "");
  const filter = {};
  for (const k of ["endpoint", "subscription", "tenant", "event_type"]) filter[k] = params.get(k) || "";
  filter.since = ms("since");
  filter.until = ms("until");
  return filter;
}

/** What the filters name, in words, for a confirmation. */
function describeFilter(filter) {
  const parts = Object.entries(filter).filter(([, v]) => v).map(([k, v]) =>
    k === "since" || k === "until" ? `${k} ${time(Number(v))}` : `${k.replace("_", " ")} ${v}`);
  return parts.length ? ` (${parts.join(", ")})` : " (all of them: no filter)";
}

async function deliveries(render, params) {
  // The API applies every filter shown, so a purge or a replay with the same filter
  // touches exactly the rows listed here.
  const filter = deliveryFilter(params);
  // "any" is every state: the stored ones (pending, dead) and those delivered lately.
  const states = params.get("state") ? [params.get("state")] : ["", "delivered"];
  const lists = await Promise.all(states.map((state) => api("GET", `deliveries${query({ ...filter, state })}`)));
  const list = lists.flatMap((data) => data.deliveries).sort((a, b) => b.created_ms - a.created_ms);
  const inputs = {};
  const field = (name, node) => {
    inputs[name] = node;
    return el("label", {}, name.replace("_", " "), node);
  };
  const state = el("select", { name: "state" }, ["", "pending", "scheduled", "dead", "delivered"].map((s) => el("option", { value: s, selected: params.get("state") === s }, s || "any")));
  const filters = el(
    "form",
    { class: "filters", id: "delivery-filters" },
    field("state", state),
    ["endpoint", "subscription", "tenant", "event_type"].map((n) => field(n, el("input", { name: n, value: params.get(n) || "", placeholder: "any" }))),
    field("since", el("input", { name: "since", type: "datetime-local", value: params.get("since") || "" })),
    field("until", el("input", { name: "until", type: "datetime-local", value: params.get("until") || "" })),
    el("button", { type: "submit" }, "Filter"),
  );
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    const chosen = {};
    for (const n of DELIVERY_FILTERS) chosen[n] = inputs[n].value;
    location.hash = `#deliveries${query(chosen)}`;
  });
  const view = el("div");
  const actions = el("div", { class: "filters" });
  const dead = list.filter((d) => d.state === "dead");
  const filtered = Object.values(filter).some(Boolean);
  // Without a filter, the API needs all=true: the confirmation says so.
  const scope = { ...filter, all: filtered ? "" : "true" };
  const plural = (n) => `${n} dead ${n === 1 ? "delivery" : "deliveries"}`;
  if (dead.length) {
    actions.append(
      el("button", {
        id: "replay",
        onclick: async () => {
          if (!(await confirmBox(view, `Replay ${plural(dead.length)}${describeFilter(filter)}?`))) return;
          const result = await api("POST", `deliveries/replay${query(scope)}`);
          view.prepend(el("p", { class: "ok", role: "status" }, `Replayed ${result.replayed}.`));
          setTimeout(route, 800);
        },
      }, "Replay dead letters"),
      el("button", {
        class: "danger",
        id: "purge",
        onclick: async () => {
          if (!(await confirmBox(view, `Delete ${plural(dead.length)}${describeFilter(filter)} for good?`))) return;
          const result = await api("DELETE", `deliveries${query({ ...scope, state: "dead" })}`);
          view.prepend(el("p", { class: "ok", role: "status" }, `Deleted ${result.purged}.`));
          setTimeout(route, 800);
        },
      }, "Purge dead letters"),
    );
  }
  const rows = list.map((d) =>
    el(
      "tr",
      {},
      el("td", {}, el("a", { href: `#delivery/${encodeURIComponent(d.id)}` }, d.id)),
      el("td", {}, target(d)),
      el("td", { class: "state" }, d.state),
      el("td", { class: "num" }, (d.attempts || []).length),
      el("td", {}, lastStatus(d)),
      el("td", {}, time(d.created_ms)),
    ),
  );
  view.append(
    el("h2", {}, "Deliveries"),
    filters,
    actions,
    el(
      "table",
      { id: "deliveries" },
      el("thead", {}, el("tr", {}, ["id", "endpoint or subscription", "state", "attempts", "last answer", "accepted"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no deliveries"))),
    ),
  );
  render(view);
}

/** The headers of the newest attempt that sent some, as hookgate sent them (signature
 * and credential values arrive masked). */
function requestHeaders(d) {
  const sent = (d.attempts || []).filter((a) => (a.request_headers || []).length).pop();
  if (!sent) return el("p", { class: "muted" }, "not sent yet");
  return el(
    "table",
    { id: "request-headers" },
    el("tbody", {}, sent.request_headers.map(([name, value]) =>
      el("tr", {}, el("th", {}, name), el("td", { class: value === "[masked]" ? "muted" : "" }, value)))),
  );
}

async function delivery(render, id) {
  const d = await api("GET", `deliveries/${encodeURIComponent(id)}`);
  const view = el("div");
  const attempts = (d.attempts || []).map((a) =>
    el(
      "tr",
      {},
      el("td", {}, time(a.at_ms)),
      el("td", { class: "num" }, a.status ?? ""),
      el("td", { class: "num" }, `${a.latency_ms} ms`),
      el("td", {}, a.error || ""),
      el("td", {}, el("pre", { class: "excerpt" }, a.response || "")),
    ),
  );
  view.append(
    el("h2", {}, `Delivery ${d.id}`),
    el(
      "table",
      { id: "delivery" },
      el("tbody", {},
        [["state", d.state], ["endpoint or subscription", target(d)], ["destination", d.destination && d.destination.url ? d.destination.url : ""], ["content type", d.content_type || ""], ["accepted", time(d.created_ms)], ["next attempt", d.state === "pending" || d.state === "scheduled" ? time(d.due_ms) : ""], ["tenant", d.event ? d.event.tenant || "" : ""], ["event", d.event ? d.event.event_id : ""]]
          .map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: k.replace(/ /g, "-") }, v)))),
    ),
    d.state === "delivered" ? el("p", { class: "ok", id: "delivered" }, `Delivered at ${time(d.delivered_ms)}.`) : el("div", { class: "filters" },
      el("button", {
        id: "retry",
        class: "primary",
        onclick: async () => {
          await api("POST", `deliveries/${encodeURIComponent(d.id)}/retry`);
          view.prepend(el("p", { class: "ok", role: "status" }, "Retrying now."));
          setTimeout(route, 800);
        },
      }, "Retry now"),
    ),
    el("h2", {}, "Payload"),
    d.payload === undefined
      ? el("p", { class: "muted" }, "not kept")
      : el("div", {},
        el("pre", { id: "payload", class: "payload" }, payloadText(d)),
        el("p", { class: "muted" }, `${d.payload_bytes} bytes${d.payload_truncated ? ", the first 16 KiB shown" : ""}`)),
    el("h2", {}, "Request headers"),
    requestHeaders(d),
    el("h2", {}, "Attempts"),
    el(
      "table",
      { id: "attempts" },
      el("thead", {}, el("tr", {}, ["time", "status", "latency", "error", "answer (excerpt)"].map((h) => el("th", {}, h)))),
      el("tbody", {}, attempts.length ? attempts : el("tr", {}, el("td", { colspan: 5, class: "muted" }, "not attempted yet"))),
    ),
  );
  render(view);
}

// --- endpoints and subscriptions ---------------------------------------------------

/** An endpoint's health as this process saw it: its last attempt and failure streak. */
function endpointHealth(h) {
  if (!h || !h.last_attempt) return "no attempt yet";
  const last = h.last_attempt;
  const outcome = last.status ? `answered ${last.status}` : `failed: ${last.error || "no answer"}`;
  const streak = h.failure_streak ? `; ${h.failure_streak} failed in a row` : "";
  return `${outcome} at ${time(last.at_ms)}${streak}; circuit ${h.circuit}`;
}

async function endpoints(render) {
  const [data, queued] = await Promise.all([api("GET", "endpoints"), api("GET", "routes")]);
  const view = el("div");
  const rows = data.endpoints.map((e) =>
    el(
      "tr",
      { "data-name": e.name },
      el("td", {}, el("a", { href: `#deliveries${query({ endpoint: e.name })}` }, e.name)),
      el("td", { class: "enabled" }, !e.enabled ? "disabled" : e.paused_until_ms ? "circuit open" : "enabled"),
      el("td", {}, !e.enabled ? e.reason || "" : e.paused_until_ms ? `${e.reason || "failing"}; held back until ${time(e.paused_until_ms)}` : ""),
      el("td", { class: "health" }, endpointHealth(e.health)),
      el("td", {},
        el("button", {
          onclick: async () => {
            await api("POST", `endpoints/${encodeURIComponent(e.name)}/${e.enabled ? "disable" : "enable"}`);
            route();
          },
        }, e.enabled ? "Disable" : "Enable"),
      ),
    ),
  );
  view.append(
    el("h2", {}, "Endpoints"),
    el("table", { id: "endpoints" },
      el("thead", {}, el("tr", {}, ["endpoint", "state", "why", "health (this process)", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no endpoints")))),
  );
  // deliver: queue routes: their webhooks wait in the same queue, under route:NAME.
  const routeRows = queued.routes.map((r) =>
    el(
      "tr",
      { "data-name": r.name },
      el("td", {}, el("a", { href: `#deliveries${query({ endpoint: `route:${r.name}` })}` }, r.name)),
      el("td", { class: "paused" }, r.paused ? `paused since ${time(r.paused_since_ms)}` : "delivering"),
      el("td", { class: "num" }, r.pending),
      el("td", { class: "num" }, r.scheduled),
      el("td", { class: "num" }, r.dead),
      el("td", {}, r.oldest_waiting_ms ? time(r.oldest_waiting_ms) : ""),
      el("td", { class: "health" }, endpointHealth(r.health)),
      el("td", {},
        el("button", {
          onclick: async () => {
            await api("POST", `routes/${encodeURIComponent(r.name)}/${r.paused ? "resume" : "pause"}`);
            route();
          },
        }, r.paused ? "Resume" : "Pause"),
      ),
    ),
  );
  if (routeRows.length) {
    view.append(
      el("h2", {}, "Inbound routes with deliver: queue"),
      el("p", { class: "muted" }, "A paused route still verifies, stores and acknowledges every webhook; none is sent to the app until it is resumed."),
      el("table", { id: "queued-routes" },
        el("thead", {}, el("tr", {}, ["route", "state", "pending", "scheduled", "dead", "oldest waiting", "app health (this process)", ""].map((h) => el("th", {}, h)))),
        el("tbody", {}, routeRows)),
    );
  }
  render(view);
}

function secretPanel(title, secret) {
  const value = el("code", { class: "secret", id: "new-secret" }, secret);
  return el(
    "div",
    { class: "panel", id: "secret-panel" },
    el("p", {}, title, " It is shown this once."),
    value,
    " ",
    el("button", {
      id: "copy-secret",
      onclick: async (e) => {
        await navigator.clipboard.writeText(secret).catch(() => {});
        e.target.textContent = "Copied";
      },
    }, "Copy"),
  );
}

async function subscriptions(render) {
  const data = await api("GET", "subscriptions?limit=1000&stats=true");
  const view = el("div");
  const notice = el("div", { id: "notice" });
  const url = el("input", { name: "url", placeholder: "https://customer.example/hooks", size: 40, required: true });
  const types = el("input", { name: "event_types", placeholder: "order.*, invoice.paid", size: 24, required: true });
  const tenant = el("input", { name: "tenant", placeholder: "optional" });
  const description = el("input", { name: "description", placeholder: "optional" });
  const create = el(
    "form",
    { class: "filters", id: "create-subscription" },
    el("label", {}, "url", url),
    el("label", {}, "event types", types),
    el("label", {}, "tenant", tenant),
    el("label", {}, "description", description),
    el("button", { type: "submit", class: "primary" }, "Create subscription"),
  );
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { url: url.value, event_types: types.value.split(",").map((t) => t.trim()).filter(Boolean) };
    if (tenant.value) body.tenant = tenant.value;
    if (description.value) body.description = description.value;
    try {
      const created = await api("POST", "subscriptions", body);
      await route();
      document.getElementById("notice").append(secretPanel(`Subscription ${created.id} created. Its signing secret:`, created.secret || created.public_key));
    } catch (err) {
      notice.replaceChildren(errorLine(err));
    }
  });
  const rows = data.subscriptions.map((s) => {
    const result = el("td", { class: "result" });
    const act = (label, fn, cls) => el("button", { class: cls, onclick: async () => {
      try { await fn(result); } catch (err) { result.replaceChildren(errorLine(err)); }
    } }, label);
    return el(
      "tr",
      { "data-id": s.id },
      el("td", {}, el("a", { href: `#deliveries${query({ subscription: s.id })}` }, s.id)),
      el("td", {}, s.url),
      el("td", {}, (s.event_types || []).join(", ")),
      el("td", {}, s.tenant || ""),
      el("td", { class: "enabled" }, s.enabled ? "enabled" : `disabled: ${s.disabled_reason || ""}`),
      health(s.stats),
      el("td", { class: "description" }, s.description || ""),
      el("td", {},
        act(s.enabled ? "Disable" : "Enable", async () => {
          await api("POST", `subscriptions/${encodeURIComponent(s.id)}/${s.enabled ? "disable" : "enable"}`);
          await route();
        }),
        " ",
        act("Send test", async (cell) => {
          const t = await api("POST", `subscriptions/${encodeURIComponent(s.id)}/test`, {});
          cell.replaceChildren(el("span", { class: t.success ? "ok" : "error" }, `${t.status ?? t.error ?? ""} in ${t.latency_ms} ms`), el("pre", { class: "excerpt" }, t.response || ""));
        }),
        " ",
        s.from_config ? null : act("Rotate secret", async () => {
          const overlap = await rotateBox(notice, s.id);
          if (overlap === null) return;
          const r = await api("POST", `subscriptions/${encodeURIComponent(s.id)}/rotate-secret`, { overlap });
          const old = overlap === "0s" ? "the old ones no longer sign" : `the old ones keep signing for ${overlap}`;
          notice.replaceChildren(secretPanel(`New secret for ${s.id} (${old}).`, r.secret || r.public_key));
        }),
      ),
      result,
    );
  });
  view.append(
    el("h2", {}, "Subscriptions"),
    create,
    notice,
    el("table", { id: "subscriptions" },
      el("thead", {}, el("tr", {}, ["id", "url", "event types", "tenant", "state", "health", "description", "", "last action"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: 9, class: "muted" }, "no subscriptions")))),
  );
  render(view);
}

// --- routing -----------------------------------------------------------------------

/** Which navigation is current: a slower page's answer must not replace a later one's. */
let active = 0;

async function route() {
  const mine = ++active;
  const render = (...nodes) => {
    if (mine === active) show(...nodes);
  };
  if (!sessionStorage.getItem(TOKEN)) return signIn();
  nav.hidden = false;
  const [path, search] = (location.hash.slice(1) || "overview").split("?");
  const params = new URLSearchParams(search || "");
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("current", a.getAttribute("href") === `#${path.split("/")[0]}`);
  try {
    if (path === "overview") await overview(render);
    else if (path === "refusals") await refusals(render, params);
    else if (path === "deliveries") await deliveries(render, params);
    else if (path.startsWith("delivery/")) await delivery(render, decodeURIComponent(path.slice("delivery/".length)));
    else if (path === "endpoints") await endpoints(render);
    else if (path === "subscriptions") await subscriptions(render);
    else await overview(render);
  } catch (e) {
    if (e.status === 401 || e.status === 403) return;
    render(errorLine(e));
  }
}

document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
route();
