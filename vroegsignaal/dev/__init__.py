"""Dev-only: the local stack (Kafka and PostgreSQL on this machine, the processes'
supervisor), the demo OIDC issuer, the simulated municipality and the bench, chaos and
soak harnesses. Its dependencies are the `local` extra (embedded PostgreSQL, the mail
server); the production image leaves the package out (Dockerfile), and nothing the image
holds imports it (the import contract in pyproject.toml)."""
