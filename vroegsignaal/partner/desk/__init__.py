"""The registration desk: a web page on which a partner's workers register a concern one
youth at a time, for organisations without an export of their own (a school, a GP's
practice). It runs on the partner's side, as the partner producer does, and holds what
the producer holds: the partner's signing key, id key and pseudonymiser access.

The worker's browser blinds every BSN (RFC 9497 VOPRF, shared/static/voprf.js); the desk
passes only blinded elements to the pseudonymiser, under the partner's credential, and
receives the registration already pseudonymised. It never receives a BSN: anything that
could carry one is refused before it is read further.
"""
