// The vroegsignaal inbox: an OIDC public client (authorization code + PKCE) that calls the
// notification API with a bearer token. No framework, no build step; every text from the
// server is set with textContent, never as HTML.

const $ = (id) => document.getElementById(id);
import { Session, el } from "./lib/oidc.js";
import { count, day, t, useLanguage, when } from "./lib/i18n.js";

const session = new Session({
  configUrl: "/api/config",
  redirectPath: "/inbox/",
  onLoggedOut: () => showLogin(),
});
const api = (path, options) => session.api(path, options);

function showError(error) {
  $("error").textContent = String(error.message || error);
  $("error").hidden = false;
}

function contactLine(c) {
  const parts = [c.display_name];
  if (c.organisation) parts.push(c.organisation);
  parts.push(c.email);
  if (c.phone) parts.push(c.phone);
  return parts.join(" · ");
}

// Which of the worker's own registrations an alert, match or task is about: their own
// case number where the organisation sent one, else the registration number its export
// tool kept (`vroegsignaal partner lookup <number>` finds the row). Only the worker's own
// organisation is ever shown these.
function yourLine(y) {
  const which = y.reference ? y.reference : t("yours.number", { number: y.number || "?" });
  return y.registered_at
    ? t("yours.on", { which, date: day(y.registered_at) })
    : t("yours", { which });
}

function appendYours(item, registrations) {
  for (const y of registrations || []) item.append(el("div", yourLine(y), "yours"));
}

// The inbox is a list of cases (the matches the user was told of), not a stream of
// alerts: each with its state, its latest change, what is unread, whether contact was
// made and the user's open tasks; a timeline inside; a filter and pages.
const FILTERS = ["open", "waiting", "closed"];
const view = { filter: "open", page: 1 };

let casesAsked = 0;

async function loadCases() {
  // A live update and a click may both be loading: only the latest request is shown, so
  // an older answer never puts another page's cases under this page's pager.
  const asked = ++casesAsked;
  const data = await api(`/api/cases?filter=${view.filter}&page=${view.page}`);
  if (asked !== casesAsked) return;
  const tabs = $("case-filters");
  tabs.replaceChildren();
  for (const key of FILTERS) {
    const tab = el("button", t(`filter.${key}`, { n: data.totals[key] }), key === view.filter ? "" : "secondary");
    tab.dataset.filter = key;
    tab.setAttribute("aria-pressed", String(key === data.filter));
    tab.onclick = () => { view.filter = key; view.page = 1; loadCases().catch(showError); };
    tabs.append(tab, " ");
  }
  const waiting = data.totals.waiting;
  $("waiting").textContent = waiting ? t("waiting", { n: waiting }) : "";
  document.title = waiting ? `(${waiting}) ${t("title")}` : t("title");
  const list = $("cases");
  list.replaceChildren();
  if (!data.cases.length) list.append(el("li", t("cases.none"), "meta"));
  for (const c of data.cases) list.append(caseCard(c));
  const pages = Math.max(1, Math.ceil(data.totals[data.filter] / data.per_page));
  const pager = $("case-pager");
  pager.replaceChildren();
  if (pages > 1) {
    const previous = el("button", t("pager.previous"), "secondary");
    previous.disabled = data.page <= 1;
    previous.onclick = () => { view.page -= 1; loadCases().catch(showError); };
    const next = el("button", t("pager.next"), "secondary");
    next.disabled = data.page >= pages;
    next.onclick = () => { view.page += 1; loadCases().catch(showError); };
    pager.append(previous, " ", el("span", t("pager.page", { page: data.page, pages }), "meta"), " ", next);
  }
}

function caseCard(c) {
  const item = el("li", null, c.unread ? "new" : "done");
  item.dataset.matchId = c.match_id;
  item.append(el("div", c.latest_key ? t(c.latest_key, c.latest_params) : c.latest, "message"));
  item.append(el("div", [t(`kind.${c.kind}`), t(`state.${c.state}`),
    `${t(`occasion.${c.latest_occasion}`)} ${when(c.latest_at)}`].join(" · "), "meta"));
  appendYours(item, c.your_registrations);
  const facts = [];
  if (c.unread) facts.push(t("facts.new", { n: c.unread }));
  facts.push(c.contact_made ? t("facts.contact") : t("facts.no-contact"));
  if (c.open_tasks) facts.push(count("facts.tasks", c.open_tasks));
  item.append(el("div", facts.join(" · "), "facts"));
  const actions = el("div");
  const open = el("button", t("case.open"), "secondary");
  open.className = "secondary open-case";
  open.onclick = () => openCase(c.match_id).catch(showError);
  actions.append(open);
  if (c.unread) {
    const ack = el("button", t("case.acknowledge"));
    ack.className = "acknowledge";
    ack.onclick = () => acknowledgeCase(c.match_id).catch(showError);
    actions.append(" ", ack);
  }
  item.append(actions);
  return item;
}

async function acknowledgeCase(matchId) {
  await api(`/api/cases/${matchId}/acknowledge`, { method: "POST" });
  await loadCases();
}

async function openCase(matchId) {
  const c = await api(`/api/cases/${matchId}`);
  const box = $("case");
  box.replaceChildren();
  box.dataset.matchId = matchId;
  box.append(el("div", `${t(`kind.${c.kind}`)} · ${t(`state.${c.state}`)}`, "meta"));
  appendYours(box, c.your_registrations);
  const timeline = el("ol", null, "timeline");
  for (const a of c.timeline) {
    const step = el("li", null, a.acknowledged_at ? "done" : "new");
    step.dataset.alertId = a.alert_id;
    step.append(el("div", a.message_key ? t(a.message_key, a.message_params) : a.message, "message"));
    step.append(el("div", `${t(`occasion.${a.occasion}`)} · ${when(a.issued_at)}`, "meta"));
    if (a.contacts.length) {
      const people = el("ul", null, "contacts");
      for (const p of a.contacts) people.append(el("li", contactLine(p)));
      step.append(el("div", t("contact"), "meta"), people);
    }
    if (a.coordinator) step.append(el("div", t("coordinator", { who: contactLine(a.coordinator) }), "meta"));
    timeline.append(step);
  }
  box.append(el("div", t("case.told")), timeline);
  $("case-section").hidden = false;
  // A party (registering worker or coordinator) also sees everyone involved and records
  // contact; a team lead or the regie role reads the timeline only.
  if (me.roles.includes("worker")) {
    try { await openMatch(matchId); } catch (error) { $("match-section").hidden = true; }
  }
}

// Alerts without a case (none today but notices yet to come) stay readable.
async function loadNotices() {
  const { alerts: loose } = await api("/api/alerts?notices=only");
  $("notices-section").hidden = !loose.length;
  const list = $("notices");
  list.replaceChildren();
  for (const a of loose) {
    const item = el("li", null, a.acknowledged_at ? "done" : "new");
    item.dataset.alertId = a.alert_id;
    item.append(el("div", a.message_key ? t(a.message_key, a.message_params) : a.message, "message"),
      el("div", when(a.issued_at), "meta"));
    list.append(item);
  }
}

async function openMatch(matchId) {
  const m = await api(`/api/matches/${matchId}`);
  const box = $("match");
  box.replaceChildren();
  box.append(el("div", t("match.head", { kind: t(`kind.${m.kind}`), state: t(`state.${m.state}`), when: when(m.raised_at) }), "meta"));
  if (m.family_note) box.append(el("p", t("match.family")));
  appendYours(box, m.your_registrations);
  const people = el("ul", null, "contacts");
  for (const p of m.parties) people.append(el("li", contactLine(p)));
  box.append(el("div", t("match.workers")), people);
  if (m.coordinator) box.append(el("div", t("coordinator", { who: contactLine(m.coordinator) })));
  const made = el("ul", null, "contacts");
  for (const c of m.contacts_made) {
    made.append(el("li", t("match.made", { who: c.worker_id, with: c.with_worker, when: when(c.recorded_at) })));
  }
  box.append(el("div", t("match.contacts")), made);
  const others = m.parties.filter((p) => p.worker_id !== me.user_id);
  if (m.coordinator && m.coordinator.worker_id !== me.user_id) others.push(m.coordinator);
  if (others.length) {
    const select = el("select");
    select.id = "contact-with";
    for (const o of others) {
      const option = el("option", o.display_name);
      option.value = o.worker_id;
      select.append(option);
    }
    const record = el("button", t("match.record"));
    record.id = "contact-made";
    record.onclick = async () => {
      try {
        await api(`/api/matches/${matchId}/contacts`, {
          method: "POST",
          body: JSON.stringify({ with_worker: select.value }),
        });
        await openMatch(matchId);
      } catch (error) { showError(error); }
    };
    const label = el("label", t("match.with"));
    label.htmlFor = select.id;
    box.append(label, select, " ", record);
  }
  $("match-section").hidden = false;
}

async function loadTasks() {
  const { tasks } = await api("/api/tasks");
  const list = $("tasks");
  list.replaceChildren();
  if (!tasks.length) list.append(el("li", t("tasks.none"), "meta"));
  for (const task of tasks) {
    const item = el("li", null, task.done_at ? "done" : "");
    item.append(el("div", t("tasks.inform", { whom: t(`addressee.${task.addressee}`) })));
    if (task.your_registration) appendYours(item, [task.your_registration]);
    item.append(el("div", t("tasks.since", { kind: t(`kind.${task.kind}`), when: when(task.created_at) }), "meta"));
    if (!task.done_at) {
      const done = el("button", t("tasks.done"));
      done.onclick = async () => {
        try {
          await api(`/api/tasks/${task.task_id}/done`, { method: "POST" });
          await loadTasks();
        } catch (error) { showError(error); }
      };
      item.append(done);
    }
    list.append(item);
  }
}

// What is past its period: a team lead's and the regie role's overview, instead of an
// alert per late alert or quiet match. It names whom to call, nothing about why.
function reach(worker) {
  return [worker.phone, worker.email].filter(Boolean).join(" · ") || "-";
}

async function loadOverdue() {
  const { late, quiet, limit } = await api("/api/overdue");
  const lateBody = $("overdue-late").querySelector("tbody");
  lateBody.replaceChildren();
  for (const item of late) {
    const row = el("tr");
    row.dataset.alert = item.alert_id;
    for (const v of [item.match_id.slice(0, 8), t(`kind.${item.kind}`), item.team || "-",
      item.worker.display_name, reach(item.worker), when(item.issued_at), when(item.escalated_at)]) {
      row.append(el("td", v));
    }
    lateBody.append(row);
  }
  $("overdue-late").hidden = late.length === 0;
  const quietBody = $("overdue-quiet").querySelector("tbody");
  quietBody.replaceChildren();
  for (const item of quiet) {
    const row = el("tr");
    row.dataset.match = item.match_id;
    const chase = item.chase.map((w) => `${w.display_name} (${reach(w)})`).join("; ") || "-";
    for (const v of [item.match_id.slice(0, 8), t(`kind.${item.kind}`), item.team || "-",
      when(item.raised_at), when(item.escalated_at), chase]) {
      row.append(el("td", v));
    }
    quietBody.append(row);
  }
  $("overdue-quiet").hidden = quiet.length === 0;
  $("overdue-none").hidden = late.length + quiet.length > 0;
  const more = $("overdue-more");
  more.hidden = late.length < limit && quiet.length < limit;
  more.textContent = t("overdue.more", { limit });
}

async function loadRegie() {
  const { matches } = await api("/api/regie/matches");
  const body = $("regie").querySelector("tbody");
  body.replaceChildren();
  for (const m of matches) {
    const row = el("tr");
    for (const v of [m.match_id.slice(0, 8), t(`kind.${m.kind}`), m.wijk, m.team || "-", t(`state.${m.state}`),
      when(m.raised_at), m.coordinated ? t("yes") : t("no"), m.contact_made ? t("yes") : t("no")]) {
      row.append(el("td", v));
    }
    body.append(row);
  }
}

// A wijk's counts: the chart this service draws (an image, with a text alternative) and
// the same numbers as a table beside it, for screen readers and for reading exactly;
// a week without a value had fewer than k children (never shown).
let trendData = null;

async function loadTrends() {
  trendData = await api("/api/trends");
  const select = $("trend-wijk");
  select.replaceChildren(...trendData.wijken.map((w) => { const o = el("option", w); o.value = w; return o; }));
  select.onchange = () => drawTrends(select.value).catch(showError);
  if (trendData.wijken.length) await drawTrends(select.value);
}

async function drawTrends(wijk) {
  const cells = trendData.cells.filter((c) => c.wijk === wijk);
  const box = $("trend-chart");
  box.replaceChildren();
  if (!cells.length) {
    box.append(el("p", t("trends.none"), "note"));
    return;
  }
  const response = await session.fetch(`/api/trends/chart?wijk=${encodeURIComponent(wijk)}&lang=${document.documentElement.lang}`);
  if (!response.ok) throw new Error(t("trends.refused", { status: response.status }));
  const image = el("img");
  image.src = URL.createObjectURL(await response.blob());
  image.alt = t("trends.alt", { wijk });
  image.id = "trend-image";
  const weeks = [...new Set(cells.map((c) => c.window))].sort();
  const themes = [...new Set(cells.map((c) => c.theme))].sort();
  const table = el("table");
  table.id = "trend-table";
  const caption = el("caption", t("trends.caption", { wijk, k: trendData.k }));
  const head = el("tr");
  head.append(el("th", t("trends.theme")), ...weeks.map((w) => { const th = el("th", w); th.scope = "col"; return th; }));
  const body = el("tbody");
  for (const theme of themes) {
    const row = el("tr");
    const name = el("th", theme.replaceAll("_", " "));
    name.scope = "row";
    row.append(name);
    for (const week of weeks) {
      const cell = cells.find((c) => c.theme === theme && c.window === week);
      row.append(el("td", cell
        ? (cell.trend ? t("trends.value.trend", { n: cell.children }) : String(cell.children))
        : t("trends.fewer", { k: trendData.k })));
    }
    body.append(row);
  }
  const thead = el("thead");
  thead.append(head);
  table.append(caption, thead, body);
  box.append(image, table);
}

async function refresh() {
  await loadCases();
  await loadNotices();
  if (me.roles.includes("worker")) await loadTasks();
  // The regie role follows coordinated matches here, not through alerts; a team lead
  // and the regie role what is past its period.
  if (me.roles.includes("regie")) await loadRegie();
  if (followsUp()) await loadOverdue();
}

function followsUp() {
  return me.roles.includes("team_lead") || me.roles.includes("regie");
}

async function listen() {
  // EventSource cannot send a bearer token, so the stream is read with fetch.
  const live = $("live");
  for (;;) {
    try {
      const response = await fetch("/api/alerts/stream", {
        headers: { Authorization: `Bearer ${session.token()}` },
      });
      if (response.status === 401) return session.logout();  // the token ran out
      if (!response.ok) throw new Error(t("stream.refused", { status: response.status }));
      live.className = "";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
          // "ready" (after a (re)connect: what came meanwhile) and "alerts": reload the
          // lists; a new match brings an alert and a task to inform the family.
          if (/^event: (alerts|ready)$/m.test(block)) await refresh().catch(showError);
        }
      }
    } catch (error) {
      if (!session.token()) return;
    }
    live.className = "off";
    await new Promise((r) => setTimeout(r, 3000));
  }
}

function showLogin() {
  $("login").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
  for (const id of ["cases-section", "case-section", "notices-section", "tasks-section",
    "overdue-section", "regie-section", "trends-section", "match-section"]) {
    $(id).hidden = true;
  }
}

let me = null;

async function start() {
  await useLanguage("/inbox/i18n");
  $("login-button").onclick = () => session.login().catch(showError);
  $("logout").onclick = () => session.logout();
  if (!(await session.start())) return showLogin();
  me = await api("/api/me");
  $("who").textContent = `${me.name} (${me.roles.join(", ")})`;
  $("logout").hidden = false;
  $("login").hidden = true;
  const receives = me.roles.some((r) => ["worker", "team_lead", "regie"].includes(r));
  if (!receives) {
    showError({ message: t("only.receivers") });
    return;
  }
  $("cases-section").hidden = false;
  await loadCases();
  await loadNotices();
  listen();
  if (me.roles.includes("worker")) { $("tasks-section").hidden = false; await loadTasks(); }
  if (followsUp()) { $("overdue-section").hidden = false; await loadOverdue(); }
  if (me.roles.includes("regie")) { $("regie-section").hidden = false; await loadRegie(); }
  if (followsUp()) {
    $("trends-section").hidden = false;
    await loadTrends();
  }
}

start().catch(showError);
