// The registration desk's page: a worker registers a concern about one youth. Every BSN
// (and the household number) is blinded here with the RFC 9497 VOPRF; only blinded
// elements go to the desk, which asks the pseudonymiser; the proof is checked here
// against the pinned public key, and the registration goes out as pseudonyms. Of a date
// of birth only the month the youth turns 23 leaves the page. Every text from the server
// is set with textContent, never as HTML.

import { Session, el } from "./lib/oidc.js";
import { day, t, useLanguage } from "./lib/i18n.js";
import { ageLimitMonth, bsnState, holdsBsn, holdsDate, registrable } from "./lib/bsn.js";
import {
  blind, bsnInput, finalize, fromBase64, fromHex, householdInput, pseudonymOf, toBase64,
} from "./lib/voprf.js";

const $ = (id) => document.getElementById(id);
const API = "/registratie/api";
const session = new Session({
  configUrl: `${API}/config`,
  redirectPath: "/registratie/",
  onLoggedOut: () => showLogin(),
});
let setup = null;
// The form's own id: a form sent again after a failure is made once.
let submission = crypto.randomUUID();

function showError(error) {
  $("error").textContent = String(error.message || error);
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// An answer of the desk; a refusal in the page's language where the catalogue has it.
async function call(path, options = {}) {
  const response = await session.fetch(`${API}${path}`, options);
  const data = await response.json();
  if (!response.ok) {
    const known = data.code && t(`error.${data.code}`) !== `error.${data.code}`;
    const error = new Error(known ? t(`error.${data.code}`) : data.error || `${response.status}`);
    error.code = data.code;
    throw error;
  }
  return data;
}

function showLogin() {
  for (const id of ["register-section", "mine-section", "logout"]) $(id).hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
}

const digits = (typed) => typed.replace(/[\s.]/g, "");

// The elfproef as the worker types: said beside the field, and on the field itself.
function watchBsn(id) {
  const input = $(id);
  const state = $(`${id}-state`);
  input.addEventListener("input", () => {
    const found = bsnState(input.value);
    state.textContent = found ? t(`bsn.${found}`) : "";
    state.className = `state ${found}`;
    input.setAttribute("aria-invalid", String(found === "invalid"));
  });
}

// The month the youth turns 23, as typed or from the date of birth; "" when not (yet) a
// month or a date (a browser without a date picker takes any text).
function limitMonth() {
  if (document.querySelector('input[name="birth"]:checked').value === "born") {
    const born = $("born").value;
    return /^\d{4}-\d{2}-\d{2}$/.test(born) ? ageLimitMonth(born) : "";
  }
  return $("limit-month").value;
}

function showAge() {
  const month = limitMonth();
  const state = $("age-state");
  if (!month) {
    state.textContent = "";
    state.className = "state";
  } else if (!registrable(month, setup.today)) {
    state.textContent = t("age.too-old");
    state.className = "state invalid";
  } else if ($("born").value && $("born").value > setup.today && !$("born-field").hidden) {
    state.textContent = t("age.future");
    state.className = "state invalid";
  } else {
    state.textContent = t("age.month", { month });
    state.className = "state valid";
  }
}

function chooseBirth() {
  const born = document.querySelector('input[name="birth"]:checked').value === "born";
  $("born-field").hidden = !born;
  $("month-field").hidden = born;
  showAge();
}

// The wijk from a postcode, looked up in this page (the postcode is never sent).
function lookUpWijk() {
  const area = $("postcode").value.replace(/\s/g, "").slice(0, 4);
  const state = $("postcode-state");
  if (area.length < 4) {
    state.textContent = "";
    return;
  }
  const wijk = setup.postcodes[area];
  if (wijk) {
    $("wijk").value = wijk;
    state.textContent = t("postcode.found", { wijk: $("wijk").selectedOptions[0].textContent });
    state.className = "state valid";
  } else {
    state.textContent = t("postcode.unknown");
    state.className = "state invalid";
  }
}

function fill() {
  const w = setup.worker;
  $("who").textContent = `${w.name} (${setup.organisation})`;
  $("contact").textContent = [w.name, w.email, w.phone].filter(Boolean).join(" · ");
  const category = $("category");
  category.replaceChildren(el("option", t("choose"), ""));
  category.firstChild.value = "";
  for (const c of setup.categories) {
    const option = el("option", t(`category.${c}`));
    option.value = c;
    category.append(option);
  }
  const wijk = $("wijk");
  wijk.replaceChildren(el("option", t("choose")));
  wijk.firstChild.value = "";
  for (const w of setup.wijken) {
    const option = el("option", `${w.name} (${w.code})`);
    option.value = w.code;
    wijk.append(option);
  }
  $("postcode-field").hidden = !setup.postcodes;
  $("born").max = setup.today;
}

const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;

// What is wrong with the form: the message (in the worker's words) and the field to fix;
// null when it can go. Nothing leaves the page before this says it can.
function problem() {
  if (bsnState($("child-bsn").value) !== "valid") return ["invalid.child", "child-bsn"];
  const ids = ["parent-1-bsn", "parent-2-bsn"];
  for (const id of ids) {
    if (digits($(id).value) && bsnState($(id).value) !== "valid") return ["invalid.parent", id];
  }
  const everyone = [$("child-bsn"), ...ids.map($)].map((f) => digits(f.value)).filter(Boolean);
  if (new Set(everyone).size !== everyone.length) {
    const seen = new Set();
    const twice = [$("child-bsn"), ...ids.map($)].find((f) => {
      const value = digits(f.value);
      if (!value) return false;
      if (seen.has(value)) return true;
      seen.add(value);
      return false;
    });
    return ["invalid.twice", twice.id];
  }
  const born = !$("born-field").hidden;
  const ageField = born ? "born" : "limit-month";
  const month = limitMonth();
  if (!month && born && $("born").value) return ["invalid.born", ageField];
  if (!month) return ["invalid.age", ageField];
  // Browsers without a month picker take any text: only YYYY-MM goes.
  if (!MONTH.test(month)) return ["invalid.month", ageField];
  if (born && $("born").value > setup.today) return ["age.future", ageField];
  if (!registrable(month, setup.today)) return ["age.too-old", ageField];
  if (!$("category").value) return ["invalid.category", "category"];
  if (!$("wijk").value) return ["invalid.wijk", "wijk"];
  const reference = $("reference").value;
  if (holdsBsn(reference)) return ["invalid.reference-bsn", "reference"];
  if (holdsDate(reference)) return ["invalid.reference-date", "reference"];
  return null;
}

function markWrong(key, id) {
  showError(t(key));
  $(id).setAttribute("aria-invalid", "true");
  $(id).focus();
}

async function register(event) {
  event.preventDefault();
  clearError();
  $("result").textContent = "";
  // Marked afresh: a BSN field by what it holds, any other as the check below finds it.
  for (const field of $("register").querySelectorAll("[aria-invalid]")) {
    if (field.id.endsWith("-bsn")) {
      field.setAttribute("aria-invalid", String(bsnState(field.value) === "invalid"));
    } else {
      field.removeAttribute("aria-invalid");
    }
  }
  const wrong = problem();
  if (wrong) {
    markWrong(...wrong);
    return;
  }
  $("submit").disabled = true;
  try {
    const child = digits($("child-bsn").value);
    const parents = ["parent-1-bsn", "parent-2-bsn"].map((id) => digits($(id).value)).filter(Boolean);
    const household = $("household").value.trim();
    const inputs = [bsnInput(child), ...parents.map(bsnInput)];
    if (household) inputs.push(householdInput(household));
    const blinds = blind(inputs);
    const answer = await call("/evaluate", {
      method: "POST",
      body: JSON.stringify({
        key_version: setup.key_version,
        blinded: blinds.map((b) => toBase64(b.blinded)),
      }),
    });
    const made = finalize(blinds, fromBase64(answer.evaluation), fromHex(setup.public_key))
      .map(pseudonymOf);
    const reference = $("reference").value.trim();
    const done = await call("/registrations", {
      method: "POST",
      body: JSON.stringify({
        submission,
        key_version: setup.key_version,
        child: made[0],
        parents: made.slice(1, 1 + parents.length),
        household: household ? made[made.length - 1] : null,
        age_limit_month: limitMonth(),
        category: $("category").value,
        wijk: $("wijk").value,
        reference: reference || null,
      }),
    });
    submission = crypto.randomUUID();
    for (const id of ["child-bsn", "parent-1-bsn", "parent-2-bsn", "household", "born",
      "limit-month", "reference", "postcode"]) {
      $(id).value = "";
      $(id).dispatchEvent(new Event("input"));
    }
    $("category").value = "";
    $("age-state").textContent = "";
    const which = reference || done.registration;
    $("result").textContent = done.sent
      ? t(reference ? "sent.reference" : "sent.number", { reference, number: which })
      : t("sent.pending", { which });
    await loadMine();
  } catch (error) {
    showError(error);
  } finally {
    $("submit").disabled = false;
  }
}

function stateOf(r) {
  if (!r.sent) return t("case.pending");
  if (r.withdrawn_at) return t(`withdrawn.${r.withdrawn_reason}`, { date: day(r.withdrawn_at) });
  if (r.case) return t(`case.${r.case.state}`);
  return t("case.none");
}

function withdrawControls(r) {
  const cell = el("td");
  if (r.withdrawn_at || !r.sent) return cell;
  const label = t("withdraw.reason", { which: r.reference || r.registration });
  const reason = el("select");
  reason.setAttribute("aria-label", label);
  for (const value of ["resolved", "unjustified"]) {
    const option = el("option", t(`reason.${value}`));
    option.value = value;
    reason.append(option);
  }
  const button = el("button", t("withdraw"), "secondary");
  button.setAttribute("aria-label", `${t("withdraw")}: ${r.reference || r.registration}`);
  button.onclick = async () => {
    clearError();
    if (!window.confirm(t("withdraw.confirm"))) return;
    button.disabled = true;
    try {
      await call(`/registrations/${r.registration}/withdraw`, {
        method: "POST",
        body: JSON.stringify({ reason: reason.value }),
      });
      await loadMine();
    } catch (error) {
      showError(error);
      button.disabled = false;
    }
  };
  cell.append(reason, button);
  return cell;
}

async function loadMine() {
  const data = await call("/registrations");
  $("cases-unknown").hidden = data.cases_known;
  const body = $("mine").querySelector("tbody");
  body.replaceChildren();
  if (!data.registrations.length) {
    const row = el("tr");
    const cell = el("td", t("mine.none"));
    cell.colSpan = 6;
    row.append(cell);
    body.append(row);
  }
  for (const r of data.registrations) {
    const row = el("tr");
    row.dataset.registration = r.registration;
    row.append(
      el("td", r.reference || t("mine.no-reference", { number: r.registration.slice(0, 8) })),
      el("td", day(r.registered_at)),
      el("td", t(`category.${r.category}`)),
      el("td", r.wijk_name ? `${r.wijk_name} (${r.wijk})` : r.wijk),
      el("td", stateOf(r), "state-cell"),
      withdrawControls(r),
    );
    body.append(row);
  }
}

async function main() {
  await useLanguage("./i18n");
  $("login-button").onclick = () => session.login();
  $("logout").onclick = () => session.logout();
  if (!(await session.start())) {
    showLogin();
    return;
  }
  $("login").hidden = true;
  $("logout").hidden = false;
  try {
    setup = await call("/setup");
  } catch (error) {
    // A login of another organisation, or without the role worker: said, nothing shown.
    showError(error);
    return;
  }
  fill();
  for (const id of ["child-bsn", "parent-1-bsn", "parent-2-bsn"]) watchBsn(id);
  for (const radio of document.querySelectorAll('input[name="birth"]')) radio.onchange = chooseBirth;
  $("born").addEventListener("input", showAge);
  $("limit-month").addEventListener("input", showAge);
  $("postcode").addEventListener("input", lookUpWijk);
  $("register").addEventListener("submit", register);
  // A form changed after a failed try is another registration; the same form sent again
  // (no answer came) is the same one, made once.
  $("register").addEventListener("input", () => { submission = crypto.randomUUID(); });
  $("register-section").hidden = false;
  $("mine-section").hidden = false;
  await loadMine();
}

main().catch(showError);
