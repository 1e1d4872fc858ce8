// Backorder's web dashboard (docs/WEB.md): one tenant's dashboard, records and histories,
// read from the server's JSON routes and kept current by its live stream. No framework and
// nothing fetched from elsewhere; every value from the server is put in the page as text.
"use strict";
(() => {
  const tenant = (() => {
    try { return decodeURIComponent((location.pathname.match(/^\/t\/([^/]+)\/?$/) || [])[1] || ""); } catch { return ""; }
  })();
  const TOKEN_KEY = "backorder.token";
  let token = sessionStorage.getItem(TOKEN_KEY) || "";

  const number = new Intl.NumberFormat();
  const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  // Day keys (YYYY-MM-DD) are UTC days: shown as those days, not shifted.
  const day = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" });

  const $ = (selector) => document.querySelector(selector);
  const view = $("#view");

  /** An element with attributes and children (strings become text, never markup). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  const svg = (tag, attrs, ...children) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const child of children.flat()) el.append(child instanceof Node ? child : String(child));
    return el;
  };

  /** A figure the tests compare with `backorder query dashboard --json`: `path` names it there. */
  const figure = (path, value, text) => h("span", { class: "value", "data-figure": path, "data-value": value ?? "" }, text ?? number.format(value ?? 0));
  const time = (iso) => (iso ? h("time", { datetime: iso }, dateTime.format(new Date(iso))) : "—");
  const status = (s) => h("span", { class: `status ${s}` }, s);
  const recordLink = (id) => h("a", { href: `#/records/${encodeURIComponent(id)}` }, id);

  // MARK: the server

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  function headers(extra) {
    const out = { Accept: "application/json", ...extra };
    if (token) out.Authorization = `Bearer ${token}`;
    return out;
  }

  /** GET a route of this tenant; a problem+json answer becomes an ApiError with its detail. */
  async function api(path) {
    return (await apiTagged(path, null)).data;
  }

  /** GET with `If-None-Match: tag`: `{ data, tag }`, or `{ data: null }` when unchanged (304). */
  async function apiTagged(path, tag) {
    let response;
    try {
      response = await fetch(`/v1/tenants/${encodeURIComponent(tenant)}/${path}`, { headers: headers(tag ? { "If-None-Match": tag } : {}), cache: "no-store" });
    } catch (error) {
      throw new ApiError(0, `The server cannot be reached (${error.message}).`);
    }
    if (response.status === 304) return { data: null, tag };
    if (!response.ok) throw new ApiError(response.status, await problemDetail(response));
    return { data: await response.json(), tag: response.headers.get("ETag") };
  }

  async function problemDetail(response) {
    try {
      const problem = await response.json();
      return problem.detail || problem.title || response.statusText;
    } catch {
      return `${response.status} ${response.statusText}`;
    }
  }

  // MARK: what the page shows around a view

  /**
   * Puts a view on the page. A redraw of the view already shown (a live update) keeps the
   * reader's place: the focused link or control and the open disclosures. A new view moves
   * focus to its heading, so a screen reader announces it.
   */
  function show(title, ...content) {
    document.title = title ? `${title} · ${tenant} · Backorder` : "Backorder";
    const redraw = shownGeneration === generation;
    shownGeneration = generation;
    const focused = redraw && view.contains(document.activeElement) ? placeOf(document.activeElement) : null;
    const open = redraw ? [...view.querySelectorAll("details[open] > summary")].map((s) => s.textContent) : [];
    view.replaceChildren(...content);
    view.setAttribute("aria-busy", "false");
    for (const summary of view.querySelectorAll("details > summary")) if (open.includes(summary.textContent)) summary.parentElement.open = true;
    if (focused) {
      const again = view.querySelector(focused);
      if (again) again.focus({ preventScroll: true });
    } else if (!redraw && movedByReader) {
      const heading = view.querySelector("h1");
      if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
    }
  }

  /** A selector that finds the same control in a redrawn view (its id, or its link). */
  function placeOf(el) {
    if (el.id) return `#${CSS.escape(el.id)}`;
    if (el.getAttribute("href")) return `a[href="${CSS.escape(el.getAttribute("href"))}"]`;
    if (el.tagName === "SUMMARY") return "details > summary";
    return null;
  }

  function loading() {
    view.setAttribute("aria-busy", "true");
  }

  /** Explains a failed request in the page; a missing or refused token asks for one. */
  function failed(error, retry) {
    view.setAttribute("aria-busy", "false");
    if (error.status === 401) return askToken(error.message);
    if (error.status === 404 && /^no tenant/.test(error.message)) {
      return show("No data", h("h1", {}, `No tenant “${tenant}”`),
        h("p", { class: "empty" }, "This server holds no events of this tenant",
          token ? ", or your token does not reach it." : ".",
          " Events appended with backorder append or POST /v1/tenants/", tenant, "/events show here at once."));
    }
    const what = error.status === 0 ? error.message
      : error.status === 403 ? `Your token may not do this: ${error.message}`
      : error.status === 503 ? `The server is not ready: ${error.message} Retrying…`
      : `The server answered ${error.status}: ${error.message}`;
    show("Error", h("h1", {}, "Something went wrong"), h("p", { class: "banner" }, what),
      h("button", { type: "button", onclick: route }, "Try again"));
    // A server that restarts or catches up is asked again, while this view is still shown
    // (one timer: a new navigation, or "Try again", replaces it).
    const shown = generation;
    clearTimeout(retryTimer);
    if (error.status === 503 || error.status === 0) retryTimer = setTimeout(() => { if (shown === generation) retry(); }, 2000);
  }

  function askToken(reason) {
    const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
    const form = h("form", { class: "token panel", onsubmit: (e) => {
      e.preventDefault();
      token = input.value.trim();
      sessionStorage.setItem(TOKEN_KEY, token);
      $("#forget-token").hidden = false;
      live.restart();
      route();
    } },
    h("h1", {}, "Access token"),
    h("p", {}, "This server needs a token for tenant ", h("strong", {}, tenant), ". It is kept in this tab only, until you close it."),
    reason && token ? h("p", { class: "banner", role: "alert" }, reason) : null,
    h("label", { for: "token" }, "Token"), input,
    h("p", {}, h("button", { type: "submit" }, "Open the dashboard")),
    h("p", { class: "muted" }, "Make one with: backorder token create --tokens FILE --tenant ", tenant, " --roles read"));
    show("Token", form);
    live.stop("needs a token");
    input.focus();
  }

  // MARK: dashboard

  async function showDashboard() {
    const shown = generation, stamp = liveDashboards;
    loading();
    try {
      dashboardRequest = apiTagged("dashboard", null);
      const { data, tag } = await dashboardRequest;
      if (shown === generation && stamp === liveDashboards) { dashboardTag = tag; renderDashboard(data); }
    } catch (error) {
      if (shown === generation) failed(error, showDashboard);
    }
  }

  function renderDashboard(d) {
    const pending = d.byStatus.pending || 0;
    const fresh = Math.max(0, pending - d.dueSoon - d.overdue);
    const quantityDone = d.totalQuantity > 0 ? d.deliveredQuantity / d.totalQuantity : 0;
    const card = (label, path, value, cls) => h("div", { class: `card ${cls || ""}` }, h("span", { class: "label" }, label), figure(path, value));
    const hours = d.averageProcessingHours;
    const bar = (cls, n, of) => { const el = h("span", { class: cls }); el.style.width = `${of > 0 ? (100 * n) / of : 0}%`; return el; };

    const content = [
      h("h1", {}, "Dashboard"),
      h("div", { class: "cards" },
        card("Requests", "requests", d.requests),
        card("Pending", "byStatus.pending", pending, "pending"),
        card("Completed", "byStatus.completed", d.byStatus.completed || 0, "completed"),
        card("Refunded", "byStatus.refunded", d.byStatus.refunded || 0),
        card("Deleted", "byStatus.deleted", d.byStatus.deleted || 0)),
      h("div", { class: "grid" },
        h("section", { class: "panel", "aria-labelledby": "h-delivery" },
          h("h2", { id: "h-delivery" }, "Delivery"),
          h("div", { class: "meter", role: "img", "aria-label": `${percent.format(quantityDone)} of the requested quantity delivered` }, bar("done", d.deliveredQuantity, d.totalQuantity)),
          h("dl", { class: "figures" },
            h("dt", {}, "Requested quantity"), h("dd", {}, figure("totalQuantity", d.totalQuantity)),
            h("dt", {}, "Delivered"), h("dd", {}, figure("deliveredQuantity", d.deliveredQuantity), " ", h("span", { class: "muted" }, `(${percent.format(quantityDone)})`)),
            h("dt", {}, "Outstanding (pending)"), h("dd", {}, figure("outstandingQuantity", d.outstandingQuantity)),
            h("dt", {}, "Nothing delivered yet"), h("dd", {}, figure("byDeliveryState.needs-delivery", d.byDeliveryState["needs-delivery"] || 0)),
            h("dt", {}, "Partly delivered"), h("dd", {}, figure("byDeliveryState.partial", d.byDeliveryState.partial || 0)),
            h("dt", {}, "Fully delivered"), h("dd", {}, figure("byDeliveryState.done", d.byDeliveryState.done || 0)))),
        h("section", { class: "panel", "aria-labelledby": "h-ageing" },
          h("h2", { id: "h-ageing" }, "Ageing of pending requests"),
          h("div", { class: "meter", role: "img", "aria-label": `${fresh} under 7 days, ${d.dueSoon} 7 to 14 days, ${d.overdue} over 14 days` },
            bar("fresh", fresh, pending), bar("soon", d.dueSoon, pending), bar("late", d.overdue, pending)),
          h("dl", { class: "figures" },
            h("dt", {}, h("span", { class: "key fresh" }), "Under 7 days"), h("dd", {}, figure("pendingUnder7Days", fresh)),
            h("dt", {}, h("span", { class: "key soon" }), "7 to 14 days (due soon)"), h("dd", {}, figure("dueSoon", d.dueSoon)),
            h("dt", {}, h("span", { class: "key late" }), "Over 14 days (overdue)"), h("dd", {}, figure("overdue", d.overdue)),
            h("dt", {}, "Average time to complete"),
            h("dd", {}, hours === null || hours === undefined ? figure("averageProcessingHours", "", "—")
              : figure("averageProcessingHours", hours, hours >= 48 ? `${decimal.format(hours / 24)} days` : `${decimal.format(hours)} hours`)))),
        ranking("Customers with the most outstanding", "topCustomers", d.topCustomers, "customer"),
        ranking("Products with the most outstanding", "topProducts", d.topProducts, "product"),
        h("section", { class: "panel wide chart", "aria-labelledby": "h-trend" },
          h("h2", { id: "h-trend" }, "Requests and completions over time"), trend(d.requestsPerDay, d.completionsPerDay || {})),
        requestsPanel("Oldest pending requests", "oldestPending", d.oldestPending.slice(0, 10), "requestedAt", "Requested",
          h("a", { href: "#/records?status=pending&sort=oldest" }, `All ${number.format(pending)} pending`)),
        requestsPanel("Recent completions", "recentCompletions", d.recentCompletions, "completedAt", "Completed",
          h("a", { href: "#/records?status=completed" }, "All completed"))),
    ];
    show("Dashboard", ...content);
    // The moment the first figures are on the page (bench/web-figures.py reads it).
    if (performance.getEntriesByName("backorder:dashboard").length === 0) performance.mark("backorder:dashboard");
  }

  function ranking(title, path, rows, kind) {
    const id = `h-${path}`;
    return h("section", { class: "panel", "aria-labelledby": id },
      h("h2", { id }, title),
      rows.length === 0 ? h("p", { class: "empty" }, "Nothing outstanding.") :
        h("div", { class: "table-wrap" }, h("table", { "data-list": path },
          h("thead", {}, h("tr", {}, h("th", {}, kind === "customer" ? "Customer" : "Product"), h("th", { class: "num" }, "Outstanding"))),
          h("tbody", {}, rows.map((r) => h("tr", { "data-id": r.id },
            h("td", {}, h("a", { href: `#/records?${kind}=${encodeURIComponent(r.id)}&status=pending` }, r.name || r.id), " ", h("span", { class: "muted" }, r.id)),
            h("td", { class: "num", "data-value": r.outstanding }, number.format(r.outstanding))))))));
  }

  function requestsPanel(title, path, rows, timeField, timeLabel, more) {
    const id = `h-${path}`;
    return h("section", { class: "panel half", "aria-labelledby": id },
      h("h2", { id }, title),
      rows.length === 0 ? h("p", { class: "empty" }, "None yet.") : recordsTable(rows, path, timeField, timeLabel, true),
      h("p", {}, more));
  }

  /** Requests and completions per day (or per week or month over a long history), as two lines. */
  function trend(requestsPerDay, completionsPerDay) {
    const days = [...new Set([...Object.keys(requestsPerDay), ...Object.keys(completionsPerDay)])].sort();
    if (days.length === 0) return h("p", { class: "empty" }, "No requests yet.");
    const toDay = (key) => Math.floor(Date.parse(`${key}T00:00:00Z`) / 86400000);
    const first = toDay(days[0]), last = toDay(days[days.length - 1]);
    const span = last - first + 1;
    const width = span <= 92 ? 1 : span <= 730 ? 7 : 30;
    const unit = width === 1 ? "day" : width === 7 ? "week" : "30 days";
    const bins = Math.ceil(span / width);
    const requests = new Array(bins).fill(0), completions = new Array(bins).fill(0);
    for (const [key, n] of Object.entries(requestsPerDay)) requests[Math.floor((toDay(key) - first) / width)] += n;
    for (const [key, n] of Object.entries(completionsPerDay)) completions[Math.floor((toDay(key) - first) / width)] += n;
    const max = Math.max(1, ...requests, ...completions);
    const W = 800, H = 200, left = 44, bottom = 22, top = 8;
    const x = (i) => left + (bins === 1 ? (W - left) / 2 : (i * (W - left - 4)) / (bins - 1));
    const y = (n) => top + (H - top - bottom) * (1 - n / max);
    const line = (values, cls) => svg("polyline", { class: cls, points: values.map((n, i) => `${x(i).toFixed(1)},${y(n).toFixed(1)}`).join(" ") });
    const label = (i) => day.format(new Date((first + i * width) * 86400000));
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "trend-title" },
      svg("title", { id: "trend-title" }, `Requests and completions per ${unit}, ${label(0)} to ${label(bins - 1)}; at most ${number.format(max)} in one ${unit}.`),
      svg("line", { class: "axis", x1: left, y1: H - bottom, x2: W, y2: H - bottom }),
      svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: H - bottom }),
      svg("text", { x: left - 6, y: top + 10, "text-anchor": "end" }, number.format(max)),
      svg("text", { x: left - 6, y: H - bottom, "text-anchor": "end" }, "0"),
      svg("text", { x: left, y: H - 6 }, label(0)),
      svg("text", { x: W, y: H - 6, "text-anchor": "end" }, label(bins - 1)),
      line(requests, "requests"), line(completions, "completions"),
      // One point draws no line: a dot.
      bins === 1 ? [svg("circle", { class: "requests", cx: x(0), cy: y(requests[0]), r: 4 }), svg("circle", { class: "completions", cx: x(0), cy: y(completions[0]), r: 4 })] : []);
    const table = h("details", {}, h("summary", {}, `The figures per ${unit}`),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, unit === "day" ? "Day (UTC)" : `${unit[0].toUpperCase()}${unit.slice(1)} from (UTC)`), h("th", { class: "num" }, "Requests"), h("th", { class: "num" }, "Completions"))),
        h("tbody", {}, requests.map((n, i) => h("tr", {}, h("td", {}, label(i)), h("td", { class: "num" }, number.format(n)), h("td", { class: "num" }, number.format(completions[i]))))))));
    return [chart,
      h("div", { class: "legend" }, h("span", {}, h("span", { class: "key requests" }), `Requests per ${unit} (by request day)`),
        h("span", {}, h("span", { class: "key completions" }), `Completions per ${unit}`)),
      table];
  }

  // MARK: records

  /** A table of request summaries; `compact` leaves out columns for the dashboard's panels. */
  function recordsTable(rows, listName, timeField, timeLabel, compact) {
    return h("div", { class: "table-wrap" }, h("table", { "data-list": listName },
      h("thead", {}, h("tr", {},
        h("th", {}, "Record"), h("th", {}, timeLabel), h("th", {}, "Customer"), h("th", { class: compact ? "hide-narrow" : "" }, "Product"),
        compact ? null : h("th", {}, "Size"), h("th", { class: "num" }, "Delivered"), compact ? null : h("th", {}, "Status"))),
      h("tbody", {}, rows.map((r) => h("tr", { "data-id": r.id },
        h("td", { class: "id" }, recordLink(r.id)), h("td", {}, time(r[timeField])),
        h("td", {}, r.customerName || r.customerId), h("td", { class: compact ? "hide-narrow" : "" }, r.productName || r.productId),
        compact ? null : h("td", {}, r.size),
        h("td", { class: "num" }, `${number.format(r.delivered)} / ${number.format(r.quantity)}`),
        compact ? null : h("td", {}, status(r.status)))))));
  }

  const filterNames = ["search", "status", "delivery", "customer", "product", "from", "to", "sort"];

  /** A date typed in the form (the viewer's day) as the instant it starts, for the server. */
  function localMidnight(date, plusDays) {
    const [y, m, d] = date.split("-").map(Number);
    const t = new Date(y, m - 1, d + plusDays);
    return Number.isNaN(t.getTime()) ? date : t.toISOString();
  }

  /**
   * The cursors of a filter's pages (page n starts at cursors[n - 1]), kept in the tab's
   * session storage: Previous works after a reload, and a bookmarked page knows its number.
   */
  function trail(key) {
    const name = `backorder.pages:${tenant}:${key}`;
    let cursors;
    try { cursors = JSON.parse(sessionStorage.getItem(name)) || [""]; } catch { cursors = [""]; }
    return { cursors, save() { sessionStorage.setItem(name, JSON.stringify(cursors.slice(0, 1000))); } };
  }

  async function showRecords(params) {
    const filters = new URLSearchParams();
    for (const name of filterNames) if (params.get(name)) filters.set(name, params.get(name));
    const key = filters.toString();
    const cursor = params.get("cursor") || "";
    const pageNumber = cursor ? Math.max(1, Number.parseInt(params.get("page"), 10) || 1) : 1;
    const pages = trail(key);
    pages.cursors[pageNumber - 1] = cursor;

    // The form's dates are the viewer's days; "to" includes its day.
    const query = new URLSearchParams(filters);
    if (filters.get("from")) query.set("from", localMidnight(filters.get("from"), 0));
    if (filters.get("to")) query.set("to", localMidnight(filters.get("to"), 1));
    query.set("limit", "50");
    if (cursor) query.set("cursor", cursor);
    const form = filtersForm(filters);
    const shown = generation;
    loading();
    let page;
    try {
      page = await api(`records?${query}`);
      if (shown !== generation) return;
    } catch (error) {
      if (shown !== generation) return;
      if (error.status === 400) {
        show("Records", h("h1", {}, "Records"), form, h("p", { class: "banner" }, error.message));
        return;
      }
      return failed(error, () => showRecords(params));
    }
    if (page.nextCursor) pages.cursors[pageNumber] = page.nextCursor;
    pages.save();
    const firstShown = (pageNumber - 1) * 50 + 1;
    const link = (n) => `#/records?${new URLSearchParams([...filters, ...(n > 1 ? [["page", String(n)], ["cursor", pages.cursors[n - 1]]] : [])])}`;
    // A page that cannot be gone to is a disabled button, not a link (keyboards follow links).
    const go = (label, n, possible, id) => possible ? h("a", { class: "button", href: link(n), id }, label) : h("button", { type: "button", disabled: true, id }, label);
    const hasPrevious = pageNumber > 1 && pages.cursors[pageNumber - 2] !== undefined && pages.cursors[pageNumber - 2] !== null;
    show("Records", h("h1", {}, "Records"), form,
      page.records.length === 0 ? h("p", { class: "empty" }, key ? "No records match these filters." : "No records yet.") :
        recordsTable(page.records, "records", "requestedAt", "Requested", false),
      h("nav", { class: "pager", "aria-label": "Pages" },
        h("span", { class: "muted", id: "page-summary", "data-total": page.total },
          page.records.length === 0 ? `0 of ${number.format(page.total)}` :
            `${number.format(firstShown)}–${number.format(firstShown + page.records.length - 1)} of ${number.format(page.total)}`),
        go("First", 1, pageNumber > 1, "first-page"),
        go("Previous", pageNumber - 1, hasPrevious, "previous-page"),
        go("Next", pageNumber + 1, Boolean(page.nextCursor), "next-page")));
  }

  function filtersForm(filters) {
    const field = (name, label, input) => h("div", {}, h("label", { for: `f-${name}` }, label), input);
    const text = (name, label, placeholder) => field(name, label, h("input", { id: `f-${name}`, name, value: filters.get(name) || "", placeholder, type: "search" }));
    const choice = (name, label, options) => field(name, label, h("select", { id: `f-${name}`, name },
      options.map(([value, text]) => h("option", { value, selected: (filters.get(name) || "") === value }, text))));
    const form = h("form", { class: "filters", role: "search", onsubmit: (e) => {
      e.preventDefault();
      const next = new URLSearchParams();
      for (const [name, value] of new FormData(form)) if (String(value).trim()) next.set(name, String(value).trim());
      location.hash = `#/records${next.size ? `?${next}` : ""}`;
    } },
    text("search", "Search names and notes", "e.g. fleece"),
    choice("status", "Status", [["", "Any"], ["pending", "Pending"], ["completed", "Completed"], ["refunded", "Refunded"], ["deleted", "Deleted"]]),
    choice("delivery", "Delivery", [["", "Any"], ["needs-delivery", "Nothing delivered"], ["partial", "Partly delivered"], ["done", "Fully delivered"]]),
    text("customer", "Customer id", "C-000001"),
    text("product", "Product id", "P-000001"),
    field("from", "Requested from", h("input", { id: "f-from", name: "from", type: "date", value: filters.get("from") || "" })),
    field("to", "Requested through", h("input", { id: "f-to", name: "to", type: "date", value: filters.get("to") || "" })),
    choice("sort", "Order", [["", "Newest first"], ["oldest", "Oldest first"]]),
    h("div", {}, h("button", { type: "submit" }, "Show")));
    return form;
  }

  async function showRecord(id) {
    const shown = generation;
    loading();
    let details, history = null, historyError = null;
    try {
      details = await api(`records/${encodeURIComponent(id)}`);
    } catch (error) {
      if (shown !== generation) return;
      if (error.status === 404 && !/^no tenant/.test(error.message)) {
        return show(id, h("h1", {}, `Record ${id}`), h("p", { class: "empty" }, `There is no record ${id} in tenant ${tenant}.`));
      }
      return failed(error, () => showRecord(id));
    }
    try {
      history = await api(`records/${encodeURIComponent(id)}/history`);
    } catch (error) {
      historyError = error;
    }
    if (shown !== generation) return;
    const r = details.record;
    const row = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
    show(`Record ${id}`,
      h("h1", {}, `Record ${id} `, status(r.status)),
      h("div", { class: "grid" },
        h("section", { class: "panel", "aria-labelledby": "h-record" },
          h("h2", { id: "h-record" }, "Now"),
          h("dl", { class: "figures", id: "record-fields" },
            row("Customer", [r.customerName || "", " ", h("span", { class: "muted" }, r.customerId)]),
            row("Product", [r.productName || "", " ", h("span", { class: "muted" }, r.productId)]),
            row("Size", r.size),
            row("Quantity", number.format(r.quantity)),
            row("Delivered", number.format(r.delivered)),
            row("Requested", time(r.requestedAt)),
            r.completedAt ? row("Completed", time(r.completedAt)) : null,
            row("Version", number.format(details.history.length))))),
      h("section", { class: "panel", "aria-labelledby": "h-history" },
        h("h2", { id: "h-history" }, "History"),
        history ? historyTable(history) : [
          h("p", { class: "muted" }, historyError && historyError.status === 403
            ? "Your token lacks the audit role: the changes of each event are not shown."
            : `The field changes could not be read (${historyError ? historyError.message : "unknown"}).`),
          eventsTable(details.history)]));
  }

  function historyTable(entries) {
    return h("div", { class: "table-wrap" }, h("table", { "data-list": "history" },
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), h("th", {}, "When"), h("th", {}, "Who"), h("th", {}, "What"), h("th", {}, "Changes"))),
      h("tbody", {}, entries.map((e) => h("tr", { "data-version": e.version },
        h("td", { class: "num" }, e.version), h("td", {}, time(e.at)), h("td", {}, e.actor || "—"), h("td", {}, e.type),
        h("td", {}, h("ul", { class: "changes" }, (e.changes || []).map((c) => h("li", {},
          h("strong", {}, c.field), ": ", c.before !== undefined ? [h("span", { class: "before" }, c.before), " → "] : null, c.after ?? "—")))))))));
  }

  function eventsTable(entries) {
    return h("div", { class: "table-wrap" }, h("table", { "data-list": "history" },
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), h("th", {}, "When"), h("th", {}, "Who"), h("th", {}, "What"))),
      h("tbody", {}, entries.map((e) => h("tr", { "data-version": e.version },
        h("td", { class: "num" }, e.version), h("td", {}, time(e.at)), h("td", {}, e.actor || "—"), h("td", {}, e.type))))));
  }

  // MARK: live updates

  /**
   * The tenant's live stream, read with fetch (EventSource cannot send a token header).
   * Each message's id is the resume point after it: a reconnect sends the last one as
   * Last-Event-ID and misses nothing, also across a server restart.
   */
  const live = (() => {
    let lastEventId = null, controller = null, stopped = false, received = 0, watchdog = null;
    let retryMs = 1000, failures = 0;
    const el = $("#live"), count = $("#live-count");
    const state = (s, text) => {
      // Only a change of state is announced (the status is a live region).
      if (el.dataset.state !== s || el.textContent !== text) { el.dataset.state = s; el.textContent = text; }
    };

    async function connect() {
      if (stopped || !tenant) return;
      // Each connection has its own controller: one that was replaced (a restart) ends
      // quietly instead of reconnecting beside its successor.
      const mine = new AbortController();
      controller = mine;
      state("connecting", "Connecting…");
      let wait = null;
      // No bytes for three heartbeats (15 s each), or no answer at all: the connection is
      // dead; start again.
      armWatchdog(mine);
      try {
        const extra = { Accept: "text/event-stream" };
        if (lastEventId) extra["Last-Event-ID"] = lastEventId;
        const response = await fetch(`/v1/tenants/${encodeURIComponent(tenant)}/live`, { headers: headers(extra), cache: "no-store", signal: mine.signal });
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          clearTimeout(watchdog);
          state("stopped", `Live updates off: ${await problemDetail(response)}`);
          return;
        }
        if (response.status === 400 && lastEventId) {
          // The resume point is not this store's (its data was replaced): start from now
          // and reload what is shown.
          lastEventId = null;
          route();
        } else if (!response.ok) {
          const after = Number(response.headers.get("Retry-After"));
          if (after > 0) wait = after * 1000;
          throw new Error(`${response.status}`);
        } else {
          failures = 0;
          state("live", "Live");
          // What is shown, as of now (events between the page's first load and this
          // stream's start would otherwise wait for the next one to show).
          if (currentView === "dashboard") refreshDashboard();
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          armWatchdog(mine);
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            armWatchdog(mine);
            // Lines may end in CRLF, LF or CR (a CR at the end may be half of a CRLF).
            buffer = (buffer + value).replace(/\r\n|\r(?=.)/gs, "\n");
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              dispatch(buffer.slice(0, end));
              buffer = buffer.slice(end + 2);
            }
            if (buffer.length > 16 << 20) throw new Error("a message over 16 MiB");
          }
        }
      } catch {
        // A failed fetch or read (the server went away, or the watchdog aborted it).
      }
      if (controller !== mine || stopped) return;
      clearTimeout(watchdog);
      failures += 1;
      state("reconnecting", "Reconnecting…");
      // 1 s, then doubling to 30 s, with jitter; or what the server asked for.
      const backoff = wait ?? Math.min(30000, retryMs * 2 ** Math.min(failures - 1, 5)) * (0.75 + Math.random() / 2);
      setTimeout(() => { if (controller === mine && !stopped) connect(); }, backoff);
    }

    function armWatchdog(connection) {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => connection.abort(), 45000);
    }

    function dispatch(block) {
      let id = null, type = "message", data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "id") id = value;
        else if (name === "event") type = value;
        else if (name === "data") data.push(value);
        else if (name === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
      }
      if (id !== null) lastEventId = id;
      if (data.length === 0) return;
      if (type === "event") {
        received += 1;
        count.dataset.count = received;
        count.textContent = `${number.format(received)} new ${received === 1 ? "event" : "events"}`;
        onEvent(JSON.parse(data.join("\n")));
      } else if (type === "dashboard") {
        onDashboard(JSON.parse(data.join("\n")));
      }
    }

    return {
      start() { stopped = false; if (!controller) connect(); },
      stop(reason) { stopped = true; clearTimeout(watchdog); if (controller) controller.abort(); controller = null; state("off", `Live updates off (${reason})`); },
      restart() { this.stop("restarting"); stopped = false; connect(); },
      /** Starts from now, not from the last event seen (the view is reloaded instead). */
      fresh() { this.stop("restarting"); lastEventId = null; stopped = false; connect(); },
    };
  })();

  let currentView = "";
  // Counts navigations: an answer that arrives after the reader moved on is dropped.
  let generation = 0, shownGeneration = -1, movedByReader = false, retryTimer = null;
  // Dashboards drawn from the live stream. A dashboard fetched before one of them arrived
  // may be older than it, and is not drawn (the stream's come in order).
  let liveDashboards = 0;
  // The ETag of the dashboard shown, when it came from a GET.
  let dashboardTag = null, dashboardRequest = null;
  let staleRecords = false;

  function onDashboard(d) {
    liveDashboards += 1;
    dashboardTag = null;
    if (currentView === "dashboard") renderDashboard(d);
  }

  /** The dashboard again, unless the one shown is still current (`304`). A first load's
   *  request still under way is waited for, so that its tag can be sent. */
  async function refreshDashboard() {
    const shown = generation;
    try { await dashboardRequest; } catch { /* shown by the view */ }
    if (shown !== generation) return;
    const stamp = liveDashboards;
    apiTagged("dashboard", dashboardTag).then(({ data, tag }) => {
      if (data && shown === generation && stamp === liveDashboards) { dashboardTag = tag; renderDashboard(data); }
    }, () => {});
  }

  let recordReload = null;
  function onEvent(e) {
    if (currentView === "records" && !staleRecords) {
      const pager = document.querySelector(".pager");
      if (pager) {
        staleRecords = true;
        pager.prepend(h("button", { type: "button", class: "quiet", id: "new-events", onclick: route }, "New events: refresh the list"));
      }
    }
    // An event of the record on screen: reload it (after a burst, once).
    if (currentView.startsWith("record:") && e.data && e.data.recordId === currentView.slice(7)) {
      clearTimeout(recordReload);
      const shown = generation;
      recordReload = setTimeout(() => { if (shown === generation) refreshView(); }, 100);
    }
  }

  // MARK: navigation

  /** Shows the view the URL's fragment names. Fragments that are not views (`#main`, the
   *  skip link's target) leave the view as it is. */
  function route() {
    if (location.hash && !location.hash.startsWith("#/")) return;
    generation += 1;
    refreshView();
  }

  /** Draws the current fragment's view again (a live update keeps the reader's place). */
  function refreshView() {
    const [path, query] = (location.hash.slice(1) || "/").split("?");
    const params = new URLSearchParams(query || "");
    staleRecords = false;
    clearTimeout(retryTimer);
    let match;
    if (path === "/" || path === "") {
      currentView = "dashboard";
      showDashboard();
    } else if (path === "/records") {
      currentView = "records";
      showRecords(params);
    } else if ((match = path.match(/^\/records\/(.+)$/))) {
      let id;
      try { id = decodeURIComponent(match[1]); } catch { id = match[1]; }
      currentView = `record:${id}`;
      showRecord(id);
    } else {
      currentView = "";
      show("Not found", h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the dashboard")));
    }
    for (const a of document.querySelectorAll("[data-nav]")) {
      const here = (a.dataset.nav === "dashboard" && currentView === "dashboard") || (a.dataset.nav === "records" && currentView !== "dashboard");
      if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
  }

  function chooseTenant() {
    const input = h("input", { id: "tenant", required: true, autocomplete: "on", spellcheck: "false" });
    show("", h("form", { class: "token panel", onsubmit: (e) => {
      e.preventDefault();
      location.href = `/t/${encodeURIComponent(input.value.trim())}`;
    } },
    h("h1", {}, "Open a tenant's dashboard"),
    h("label", { for: "tenant" }, "Tenant"), input,
    h("p", {}, h("button", { type: "submit" }, "Open"))));
    input.focus();
  }

  $("#forget-token").hidden = !token;
  $("#forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    token = "";
    $("#forget-token").hidden = true;
    live.restart();
    route();
  });

  if (!tenant) {
    for (const el of document.querySelectorAll(".bar nav, #live, #live-count")) el.hidden = true;
    chooseTenant();
    return;
  }
  $("#tenant-name").textContent = tenant;
  window.addEventListener("hashchange", () => {
    movedByReader = true;
    route();
  });
  // The skip link moves focus to the content without changing the view.
  $(".skip").addEventListener("click", (e) => {
    e.preventDefault();
    $("#main").focus();
  });
  route();
  live.start();

  // A browser keeps at most six HTTP/1.1 connections to one server, and each open live
  // stream holds one: a tab that is hidden for a while, or left, gives its stream back.
  // Shown again, it starts from now and reloads what it shows (cheaper than replaying
  // every event it missed; the page shows views, not the log).
  let hiddenTimer = null, hiddenStop = false;
  document.addEventListener("visibilitychange", () => {
    clearTimeout(hiddenTimer);
    if (document.hidden) {
      hiddenTimer = setTimeout(() => { hiddenStop = true; live.stop("tab hidden"); }, 30000);
    } else if (hiddenStop) {
      hiddenStop = false;
      live.fresh();
      refreshView();
    }
  });
  window.addEventListener("pagehide", () => live.stop("page left"));
  window.addEventListener("pageshow", (e) => { if (e.persisted) { live.fresh(); refreshView(); } });
})();
