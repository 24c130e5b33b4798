// Message catalogues for the pages: one JSON file per language beside each page
// (i18n/nl.json, i18n/en.json). Dutch unless the user asks for English (?lang=en, kept
// in this browser); dates and times in Europe/Amsterdam, in the language's format.
const LANGUAGES = ["nl", "en"];
const LOCALES = { nl: "nl-NL", en: "en-GB" };
let messages = {};
let language = "nl";

export async function useLanguage(base) {
  const asked = new URLSearchParams(location.search).get("lang");
  if (LANGUAGES.includes(asked)) localStorage.setItem("lang", asked);
  const kept = localStorage.getItem("lang");
  language = LANGUAGES.includes(kept) ? kept : "nl";
  const response = await fetch(`${base}/${language}.json`);
  messages = await response.json();
  document.documentElement.lang = language;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  for (const node of document.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
  const other = language === "nl" ? "en" : "nl";
  const toggle = document.getElementById("language");
  if (toggle) {
    toggle.textContent = t("language.other");
    toggle.lang = other;
    toggle.onclick = () => {
      localStorage.setItem("lang", other);
      location.reload();
    };
  }
  return language;
}

// The page's language, for the server's own pages (a printable report).
export function currentLanguage() {
  return language;
}

// A message in the page's language; {name} takes params.name. An unknown key shows as
// itself (and fails the catalogue test).
export function t(key, params = {}) {
  const text = messages[key];
  if (text === undefined) return key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? `{${name}}`));
}

// "one" or "other" form of a counted message: key.one / key.other with {n}.
export function count(key, n, params = {}) {
  return t(`${key}.${n === 1 ? "one" : "other"}`, { n, ...params });
}

export function when(iso) {
  return new Intl.DateTimeFormat(LOCALES[language], {
    dateStyle: "medium", timeStyle: "short", timeZone: "Europe/Amsterdam",
  }).format(new Date(iso));
}

export function day(iso) {
  return new Intl.DateTimeFormat(LOCALES[language], {
    dateStyle: "medium", timeZone: "Europe/Amsterdam",
  }).format(new Date(iso));
}
