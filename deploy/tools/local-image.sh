#!/usr/bin/env bash
# The project's image built on a machine that reaches Debian's and Python's package
# mirrors but no image registry (docs/operator.md, "The image without a registry").
#
#   sudo deploy/tools/local-image.sh [TAG]        default TAG: vroegsignaal:local
#
# The base is made by debootstrap from Debian bookworm's own packages (Python 3.11 and
# venv) and imported into the local Docker engine; the Dockerfile builds on it
# (PYTHON_IMAGE) exactly as on python:3.11-slim-bookworm. Then
#   vroegsignaal dev up --image TAG
# runs the five services in containers of it beside the local Kafka and PostgreSQL.
# The base trusts the certificate authorities this machine adds itself
# (/usr/local/share/ca-certificates, a proxy's say), so that pip reaches PyPI here: an
# image built this way is for checking on this machine, never for a registry.
set -euo pipefail

TAG=${1:-vroegsignaal:local}
BASE=${BASE_TAG:-vroegsignaal-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cd "$(dirname "$0")/../.."

need() { command -v "$1" >/dev/null || { echo "local-image: $1 not found: $2" >&2; exit 1; }; }
need docker "install Debian's docker.io (apt-get install docker.io)"
docker info >/dev/null 2>&1 || {
  echo "local-image: the Docker engine does not answer: start it (systemctl start docker, or dockerd &)" >&2
  exit 1
}

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  need debootstrap "apt-get install debootstrap"
  [ "$(id -u)" = 0 ] || { echo "local-image: debootstrap needs root: run with sudo" >&2; exit 1; }
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "local-image: making the base $BASE from Debian bookworm ($MIRROR)"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$root" "$MIRROR" >/dev/null
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/sh"]' - "$BASE" >/dev/null
fi

echo "local-image: building $TAG on $BASE"
docker build --quiet --network host --build-arg PYTHON_IMAGE="$BASE" -t "$TAG" . >/dev/null
# What deploy-check asks of the image, now of the built one: no root, no dev-only code.
user=$(docker image inspect --format '{{.Config.User}}' "$TAG")
[ -n "$user" ] && [ "${user%%:*}" != root ] && [ "${user%%:*}" != 0 ] || {
  echo "local-image: $TAG runs as '${user:-root}'" >&2; exit 1; }
if docker run --rm --entrypoint python "$TAG" -c 'import vroegsignaal.dev' 2>/dev/null; then
  echo "local-image: $TAG holds the dev-only package vroegsignaal.dev" >&2; exit 1
fi
docker run --rm "$TAG" --help >/dev/null
echo "local-image: $TAG built (user $user, no dev-only code); run it with"
echo "  vroegsignaal dev up --image $TAG"
