// The privacy officer's page: the log's integrity, erasure requests to decide, data
// subjects' access reports, exports of a period, and the search of the audit log. Every
// read, list, decision, export and search is recorded in the log.
import { Session, el } from "./lib/oidc.js";
import { currentLanguage, t, useLanguage, when } from "./lib/i18n.js";

const $ = (id) => document.getElementById(id);
const ACTIONS = ["create", "read", "update", "delete", "search", "export", "assign", "notify",
  "shred", "login", "policy-change", "reject"];
const session = new Session({
  configUrl: "/audit/ui/config",
  redirectPath: "/audit/ui/",
  onLoggedOut: () => showLogin(),
});
let query = null;

function showError(error) {
  $("error").textContent = String(error.message || error);
  $("error").hidden = false;
}

const SECTIONS = ["integrity-section", "erasures-section", "reports-section", "export-section",
  "search-section", "results-section"];

function showLogin() {
  $("login").hidden = false;
  $("logout").hidden = true;
  for (const id of SECTIONS) $(id).hidden = true;
  $("who").textContent = "";
}

// The log's integrity: the latest signed head, the last full verification and its result.
async function loadIntegrity() {
  const i = await session.api("/audit/v1/integrity");
  const list = $("integrity");
  list.replaceChildren();
  const fact = (term, value) => list.append(el("dt", term), el("dd", String(value)));
  fact(t("integrity.entries"), i.entries);
  fact(t("integrity.head"), i.head
    ? t("integrity.head.value", { size: i.head.size, when: when(i.head.signed_at) })
    : t("integrity.head.none"));
  if (i.head) fact(t("integrity.root"), i.head.root);
  const v = i.last_verification;
  fact(t("integrity.verification"), v
    ? t("integrity.verification.value", { state: t(`verification.${v.state}`),
      when: when(v.started_at), who: v.started_by })
      + (v.finished_at ? " · " + t("integrity.verification.checked",
        { n: v.entries, when: when(v.finished_at) }) : "")
    : t("integrity.verification.never"));
  $("integrity").dataset.state = v ? v.state : "never";
  const problems = $("problems");
  problems.replaceChildren(...(v ? v.problems : []).map((p) => el("li", p)));
  $("verify").disabled = Boolean(v && v.state === "running");
  $("integrity-section").hidden = false;
  if (v && v.state === "running") setTimeout(() => loadIntegrity().catch(showError), 2000);
}

async function startVerification() {
  await session.api("/audit/v1/verifications", { method: "POST" });
  await loadIntegrity();
}

async function loadReports() {
  const { reports } = await session.api("/audit/v1/reports");
  const body = $("reports").querySelector("tbody");
  body.replaceChildren();
  for (const r of reports) {
    const row = el("tr");
    row.dataset.request = r.request_id;
    const read = el("button", t("reports.read"));
    read.onclick = () => showReport(r.request_id).catch(showError);
    const cell = el("td");
    cell.append(read);
    row.append(el("td", when(r.created_at)), el("td", r.request_id), cell);
    body.append(row);
  }
  $("no-reports").hidden = reports.length > 0;
  $("reports-section").hidden = false;
}

async function showReport(requestId) {
  // The printable page, in a sandboxed frame (no scripts): read here, printed from here.
  const response = await session.fetch(`/audit/v1/reports/${requestId}?format=html&lang=${currentLanguage()}`);
  if (!response.ok) throw new Error(t("reports.refused", { status: response.status }));
  const frame = $("report");
  frame.srcdoc = await response.text();
  frame.dataset.request = requestId;
  frame.hidden = false;
  $("print-report").hidden = false;
  $("print-report").onclick = () => frame.contentWindow.print();
}

async function exportPeriod(form) {
  const data = new FormData(form);
  const day = (value) => new Date(`${value}T00:00:00`);
  const through = day(data.get("to"));
  through.setDate(through.getDate() + 1);  // the "to" day itself is part of the period
  const params = new URLSearchParams({ from: day(data.get("from")).toISOString(), to: through.toISOString() });
  const response = await session.fetch(`/audit/v1/export?${params}`);
  if (!response.ok) throw new Error((await response.json()).error || t("export.refused", { status: response.status }));
  const text = await response.text();
  const entries = text.split("\n").filter((line) => line.includes('"type": "entry"')).length;
  const link = el("a", t("export.download", { n: entries }));
  link.href = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
  link.download = `audit-export-${data.get("from")}-${data.get("to")}.jsonl`;
  link.id = "export-download";
  $("export-result").replaceChildren(link);
}

function criteria(form) {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (!value) continue;
    // Dates are whole days in the browser's time zone.
    const moment = name === "from" || name === "to" ? new Date(`${value}T00:00:00`).toISOString() : value;
    params.set(name, moment);
  }
  return params;
}

async function run(after) {
  const params = new URLSearchParams(query);
  if (after !== undefined) params.set("after", after);
  const page = await session.api(`/audit/v1/search?${params}`);
  const body = $("results").querySelector("tbody");
  if (after === undefined) body.replaceChildren();
  for (const { leaf_index: index, event: e } of page.entries) {
    const row = el("tr");
    row.dataset.leaf = index;
    const cells = [index, when(e.occurred_at), e.action, e.outcome,
      `${e.actor.actor_id} (${e.actor.role}${e.actor.organisation ? `, ${e.actor.organisation}` : ""})`,
      e.on_behalf_of || "", `${e.object_type} ${e.object_id || ""}`, e.source_system, e.purpose];
    cells.forEach((value, i) => row.append(el("td", String(value), i === 3 && value !== "success" ? "denied" : "")));
    body.append(row);
  }
  $("count").textContent = `(${body.children.length}${page.next_after !== null ? "+" : ""})`;
  $("more").hidden = page.next_after === null;
  $("more").onclick = () => run(page.next_after).catch(showError);
  $("results-section").hidden = false;
}

async function decide(requestId, approve, reason) {
  await session.api(`/audit/v1/erasures/${requestId}/decision`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ approve, reason }),
  });
  await loadErasures();
}

async function loadErasures() {
  const { requests, more } = await session.api("/audit/v1/erasures?status=pending");
  const body = $("erasures").querySelector("tbody");
  body.replaceChildren();
  for (const r of requests) {
    const row = el("tr");
    row.dataset.request = r.request_id;
    for (const value of [when(r.requested_at), r.request_id, r.partner_id, r.subject, r.ended,
      r.organisations_remaining]) row.append(el("td", String(value)));
    const reason = el("input");
    reason.setAttribute("aria-label", t("erasures.reason.for", { request: r.request_id }));
    reason.maxLength = 500;
    const reasonCell = el("td");
    reasonCell.append(reason);
    const approve = el("button", t("erasures.approve"));
    const refuse = el("button", t("erasures.refuse"));
    approve.onclick = () => {
      if (window.confirm(t("erasures.confirm"))) {
        decide(r.request_id, true, reason.value).catch(showError);
      }
    };
    refuse.onclick = () => decide(r.request_id, false, reason.value).catch(showError);
    const actions = el("td");
    actions.append(approve, refuse);
    row.append(reasonCell, actions);
    body.append(row);
  }
  $("erasure-count").textContent = `(${requests.length}${more ? t("erasures.more") : ""})`;
  $("no-erasures").hidden = requests.length > 0;
  $("erasures-section").hidden = false;
}

async function start() {
  await useLanguage("/audit/ui/i18n");
  $("login-button").onclick = () => session.login().catch(showError);
  $("logout").onclick = () => session.logout();
  const select = document.querySelector("select[name=action]");
  for (const action of ACTIONS) {
    const option = el("option", t(`action.${action}`));
    option.value = action;
    select.append(option);
  }
  if (!(await session.start())) return showLogin();
  const me = await session.api("/audit/v1/me");
  $("who").textContent = `${me.name} (${me.roles.join(", ")})`;
  $("logout").hidden = false;
  $("login").hidden = true;
  if (!me.roles.includes("privacy_officer")) {
    showError({ message: t("only.fg") });
    return;
  }
  $("search-section").hidden = false;
  $("verify").onclick = () => startVerification().catch(showError);
  $("export").onsubmit = (event) => {
    event.preventDefault();
    exportPeriod(event.target).catch(showError);
  };
  $("export-section").hidden = false;
  await loadIntegrity();
  await loadErasures();
  await loadReports();
  $("search").onsubmit = (event) => {
    event.preventDefault();
    $("error").hidden = true;
    query = criteria(event.target);
    run().catch(showError);
  };
}

start().catch(showError);
