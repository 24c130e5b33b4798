// What the registration form checks and turns a date into before anything is sent, the
// same rules as the partner producer (shared/contracts.py is_valid_bsn,
// vroegsignaal/partner/rows.py): a BSN passes the elfproef, and of a date of birth only
// the month the youth turns 23 leaves the page.

export const AGE_LIMIT = 23;

// The elfproef: nine digits, weights 9..2 and -1, the sum divisible by 11, not all zero.
export function isValidBsn(value) {
  if (!/^[0-9]{9}$/.test(value) || value === "000000000") return false;
  const weights = [9, 8, 7, 6, 5, 4, 3, 2, -1];
  const sum = weights.reduce((total, w, i) => total + w * Number(value[i]), 0);
  return sum % 11 === 0;
}

// What the worker has typed so far: "" (nothing yet), "incomplete", "invalid" or "valid".
export function bsnState(typed) {
  const value = typed.replace(/[\s.]/g, "");
  if (value === "") return "";
  if (!/^[0-9]*$/.test(value) || value.length > 9) return "invalid";
  if (value.length < 9) return "incomplete";
  return isValidBsn(value) ? "valid" : "invalid";
}

// "YYYY-MM" of the month a youth born on `born` ("YYYY-MM-DD") turns 23; the day stays here.
export function ageLimitMonth(born) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(born);
  if (!match) throw new Error("a date of birth is YYYY-MM-DD");
  return `${String(Number(match[1]) + AGE_LIMIT).padStart(4, "0")}-${match[2]}`;
}

// Whether a youth whose limit month is `limitMonth` may be registered in the month of
// `today` ("YYYY-MM-DD"): a registration ends at the start of the month they turn 23.
export function registrable(limitMonth, today) {
  return limitMonth > today.slice(0, 7);
}

// The value of a decimal digit of any script (Arabic-Indic, Devanagari, ...), else null.
// Unicode keeps each script's digits as ten code points in a row, zero first.
function digitValue(char) {
  if (!/\p{Nd}/u.test(char)) return null;
  let code = char.codePointAt(0);
  let value = 0;
  while (value < 9 && /\p{Nd}/u.test(String.fromCodePoint(code - 1))) {
    code -= 1;
    value += 1;
  }
  return value;
}

// The text in compatibility form (full-width, circled, super- and subscript digits as
// digits), every decimal digit of any script as its ASCII one (contracts.py _plain).
function plain(text) {
  let flat = "";
  for (const char of text.normalize("NFKC")) {
    const digit = digitValue(char);
    flat += digit === null ? char : String(digit);
  }
  return flat;
}

// The runs of digits of a free text as a BSN could hide in it: letters end a run, anything
// else between digits is dropped (shared/contracts.py digit_runs).
export function digitRuns(text) {
  const runs = [];
  let run = "";
  for (const char of plain(text)) {
    if (char >= "0" && char <= "9") run += char;
    else if (/[\p{L}\p{M}]/u.test(char)) {
      if (run) runs.push(run);
      run = "";
    }
  }
  if (run) runs.push(run);
  return runs;
}

// Whether a free text (the worker's own case number) holds a number that passes the
// elfproef: eight or nine digits, or nine within a longer run; or a number sign that is
// no plain digit, which could hide one (contracts.py holds_bsn).
export function holdsBsn(text) {
  if (/[\p{No}\p{Nl}]/u.test(text.normalize("NFKC"))) return true;
  for (const run of digitRuns(text)) {
    if ((run.length === 8 || run.length === 9) && isValidBsn(run.padStart(9, "0"))) return true;
    if (run.length > 9) {
      for (let i = 0; i + 9 <= run.length; i++) if (isValidBsn(run.slice(i, i + 9))) return true;
    }
  }
  return false;
}

function isDay(year, month, day) {
  if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 || day > 31) return false;
  const moment = new Date(0);
  moment.setUTCFullYear(year, month - 1, day);
  return moment.getUTCFullYear() === year && moment.getUTCMonth() === month - 1 &&
    moment.getUTCDate() === day;
}

const twoDigitYear = (day, month, year) => isDay(2000 + year, month, day) ||
  isDay(1900 + year, month, day);

const DATE_PARTS =
  /(?<![0-9])([0-9]{1,4})[^0-9A-Za-z]{1,3}([0-9]{1,2})[^0-9A-Za-z]{1,3}([0-9]{1,4})(?![0-9])/gu;
const MONTHS = {
  jan: 1, feb: 2, maa: 3, mrt: 3, mar: 3, apr: 4, mei: 5, may: 5, jun: 6,
  jul: 7, aug: 8, sep: 9, okt: 10, oct: 10, nov: 11, dec: 12,
};
const NAMED_MONTH = new RegExp(
  `(?<![0-9])([0-9]{1,2})[^0-9A-Za-z]{0,3}(${Object.keys(MONTHS).join("|")})[A-Za-z]*\\.?` +
    "[^0-9A-Za-z]{0,3}([0-9]{2}|[0-9]{4})(?![0-9])",
  "giu",
);

// Whether a free text holds a day, perhaps a date of birth, in any notation
// (contracts.py holds_date).
export function holdsDate(text) {
  const flat = plain(text);
  for (const [, first, middle, last] of flat.matchAll(DATE_PARTS)) {
    const [f, m, l] = [Number(first), Number(middle), Number(last)];
    if (first.length === 4 && last.length <= 2 && isDay(f, m, l)) return true;
    if (first.length <= 2 && last.length === 4 && isDay(l, m, f)) return true;
    if (first.length <= 2 && last.length === 2 && twoDigitYear(f, m, l)) return true;
  }
  for (const [, day, month, year] of flat.matchAll(NAMED_MONTH)) {
    const number = MONTHS[month.toLowerCase()];
    if (year.length === 4 && isDay(Number(year), number, Number(day))) return true;
    if (year.length === 2 && twoDigitYear(Number(day), number, Number(year))) return true;
  }
  for (const run of digitRuns(text)) {
    const n = (from, to) => Number(run.slice(from, to));
    if (run.length === 8) {
      if (n(0, 4) >= 1900 && n(0, 4) <= 2099 && isDay(n(0, 4), n(4, 6), n(6))) return true;
      if (n(4) >= 1900 && n(4) <= 2099 && isDay(n(4), n(2, 4), n(0, 2))) return true;
    }
    if (run.length === 6) {
      if (twoDigitYear(n(0, 2), n(2, 4), n(4)) || twoDigitYear(n(4), n(2, 4), n(0, 2))) return true;
    }
  }
  return false;
}
