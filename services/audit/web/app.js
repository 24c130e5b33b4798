// The privacy officer's search of the audit log. Every search is recorded in the log.
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
  $("search").onsubmit = (event) => {
    event.preventDefault();
    $("error").hidden = true;
    query = criteria(event.target);
    run().catch(showError);
  };
}

start().catch(showError);
