"""The pseudonymiser: evaluates the VOPRF (RFC 9497, ristretto255-SHA512) on blinded
inputs for authenticated partners, with its own key, in its own process. It never sees
a BSN and keeps nothing per request but an audit event."""
