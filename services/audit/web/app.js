// The privacy officer's page: erasure requests to decide, and the search of the audit log.
// Every list, decision and search is recorded in the log.
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

function showLogin() {
  $("login").hidden = false;
  $("logout").hidden = true;
  $("search-section").hidden = true;
  $("erasures-section").hidden = true;
  $("results-section").hidden = true;
  $("who").textContent = "";
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
  await loadErasures();
  $("search").onsubmit = (event) => {
    event.preventDefault();
    $("error").hidden = true;
    query = criteria(event.target);
    run().catch(showError);
  };
}

start().catch(showError);
