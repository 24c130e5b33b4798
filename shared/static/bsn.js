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
