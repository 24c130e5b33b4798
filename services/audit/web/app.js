// The privacy officer's page: the log's integrity, erasure requests to decide, data
// subjects' access reports, exports of a period, and the search of the audit log. Every
// read, list, decision, export and search is recorded in the log.
import { Session, el, when } from "./lib/oidc.js";

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
  fact("Entries", i.entries);
  if (i.head) {
    fact("Latest signed head", `${i.head.size} entries, signed ${when(i.head.signed_at)}`);
    fact("Root", i.head.root);
  } else {
    fact("Latest signed head", "none yet");
  }
  const v = i.last_verification;
  const states = { intact: "intact", problems: "PROBLEMS FOUND", running: "running",
    interrupted: "interrupted (start it again)" };
  fact("Last full verification", v
    ? `${states[v.state]} · started ${when(v.started_at)} by ${v.started_by}`
      + (v.finished_at ? ` · ${v.entries} entries checked ${when(v.finished_at)}` : "")
    : "never");
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
    const read = el("button", "Read");
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
  const response = await session.fetch(`/audit/v1/reports/${requestId}?format=html`);
  if (!response.ok) throw new Error(`the report could not be read (${response.status})`);
  const frame = $("report");
  frame.srcdoc = await response.text();
  frame.dataset.request = requestId;
  frame.hidden = false;
  $("print-report").hidden = false;
  $("print-report").onclick = () => frame.contentWindow.print();
}

async function exportPeriod(form) {
  const data = new FormData(form);
  const day = (value) => new Date(`${value}T00:00:00`).toISOString();
  const params = new URLSearchParams({ from: day(data.get("from")), to: day(data.get("to")) });
  const response = await session.fetch(`/audit/v1/export?${params}`);
  if (!response.ok) throw new Error((await response.json()).error || `export refused (${response.status})`);
  const text = await response.text();
  const entries = text.split("\n").filter((line) => line.includes('"type": "entry"')).length;
  const link = el("a", `Download ${entries} entries with their proofs`);
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
    reason.setAttribute("aria-label", `Reason for request ${r.request_id}`);
    reason.maxLength = 500;
    const reasonCell = el("td");
    reasonCell.append(reason);
    const approve = el("button", "Approve erasure");
    const refuse = el("button", "Refuse");
    approve.onclick = () => {
      if (window.confirm("Erase this subject everywhere? This cannot be undone.")) {
        decide(r.request_id, true, reason.value).catch(showError);
      }
    };
    refuse.onclick = () => decide(r.request_id, false, reason.value).catch(showError);
    const actions = el("td");
    actions.append(approve, refuse);
    row.append(reasonCell, actions);
    body.append(row);
  }
  $("erasure-count").textContent = `(${requests.length}${more ? "+, the oldest first" : ""})`;
  $("no-erasures").hidden = requests.length > 0;
  $("erasures-section").hidden = false;
}

async function start() {
  $("login-button").onclick = () => session.login().catch(showError);
  $("logout").onclick = () => session.logout();
  const select = document.querySelector("select[name=action]");
  for (const action of ACTIONS) {
    const option = el("option", action);
    option.value = action;
    select.append(option);
  }
  if (!(await session.start())) return showLogin();
  const me = await session.api("/audit/v1/me");
  $("who").textContent = `${me.name} (${me.roles.join(", ")})`;
  $("logout").hidden = false;
  $("login").hidden = true;
  if (!me.roles.includes("privacy_officer")) {
    showError({ message: "The audit log is for the privacy officer only." });
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
