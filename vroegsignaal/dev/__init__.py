"""Dev-only: the local stack (Kafka and PostgreSQL on this machine, the processes'
supervisor), the demo OIDC issuer, the simulated municipality and the bench, chaos and
soak harnesses. Installed with the `local` extra; the production image leaves it out,
and nothing the image holds imports it (the import contract in pyproject.toml)."""
