"""The partner producer: runs at a partner organisation, turns its export into signed,
pseudonymised signals. No BSN, date of birth or name ever leaves it."""
