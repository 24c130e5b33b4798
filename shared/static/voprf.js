// The partner producer's pseudonymisation, in the browser: every BSN is blinded here with
// the RFC 9497 VOPRF (ristretto255-SHA512, @noble/curves), only blinded elements go to the
// pseudonymiser, its batch DLEQ proof is checked against the pinned public key, and the
// pseudonym is the first 32 bytes of the output, as vroegsignaal/partner/pseudonymise.py
// makes it. The BSN never leaves this page; nor does a blind.
//
// A page that imports this maps the packages to the vendored files, e.g.
//   <script type="importmap">{"imports": {"@noble/curves/": "lib/vendor/noble-curves/",
//                                         "@noble/hashes/": "lib/vendor/noble-hashes/"}}</script>

import { ristretto255_oprf as suite } from "@noble/curves/ed25519.js";

export const SUITE = "ristretto255-SHA512";
const ELEMENT_BYTES = 32;
const PROOF_BYTES = 64;
// Domain separation, as the partner producer: a BSN and a household never meet.
const BSN_DOMAIN = "vroegsignaal/v1/bsn:";
const HOUSEHOLD_DOMAIN = "vroegsignaal/v1/household:";
const encoder = new TextEncoder();

export const bsnInput = (bsn) => encoder.encode(BSN_DOMAIN + bsn);
export const householdInput = (id) => encoder.encode(HOUSEHOLD_DOMAIN + id);

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(hex) {
  if (!/^(?:[0-9a-f]{2})*$/i.test(hex)) throw new Error("not hexadecimal");
  return Uint8Array.from(hex.match(/../g) || [], (b) => parseInt(b, 16));
}

export function toBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

export function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

// One blind per input (fresh randomness unless `rng` is given: tests only). Send
// `blinded` of each; keep the rest in this page.
export function blind(inputs, rng) {
  return inputs.map((input) => ({ input, ...suite.voprf.blind(input, rng) }));
}

// The pseudonymiser's answer to a batch: its proof (64 bytes) then one evaluated element
// per blinded one, in order. Throws when the proof does not verify against `publicKey`:
// the pseudonymiser did not use the key pinned for this version.
export function finalize(blinds, evaluation, publicKey) {
  if (evaluation.length !== PROOF_BYTES + ELEMENT_BYTES * blinds.length) {
    throw new Error(
      `the pseudonymiser answered ${evaluation.length} bytes for ${blinds.length} elements`,
    );
  }
  const proof = evaluation.slice(0, PROOF_BYTES);
  const items = blinds.map((b, i) => ({
    input: b.input,
    blind: b.blind,
    blinded: b.blinded,
    evaluated: evaluation.slice(PROOF_BYTES + ELEMENT_BYTES * i, PROOF_BYTES + ELEMENT_BYTES * (i + 1)),
  }));
  try {
    return suite.voprf.finalizeBatch(items, publicKey, proof);
  } catch {
    throw new Error(
      "the pseudonymiser's proof does not verify against the pinned public key: " +
        "it did not use the key it claims. Stop and call the municipality.",
    );
  }
}

// The pseudonym of an output, as the partner producer writes it.
export const pseudonymOf = (output) => toHex(output.slice(0, 32));
