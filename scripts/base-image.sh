#!/usr/bin/env bash
# Build a Python base image without any registry: debootstrap Debian bookworm (minbase + python3, venv, pip,
# CA certificates, and libgomp1 for LightGBM) from the machine's apt mirror and `docker import` it. Skipped when the tag already exists.
#
#   scripts/base-image.sh [TAG]          default TAG: mlops-local/python-base:bookworm
#   MIRROR=http://deb.debian.org/debian  override the apt mirror (default: the one apt on this host uses)
# Needs root (debootstrap) and DOCKER_HOST pointing at a running engine (scripts/docker-engine.sh).
set -euo pipefail

TAG="${1:-mlops-local/python-base:bookworm}"
log() { echo "base-image: $*" >&2; }

if docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG exists, nothing to do"
    echo "$TAG"
    exit 0
fi
command -v debootstrap >/dev/null 2>&1 || { log "debootstrap is missing: apt-get install -y debootstrap"; exit 1; }
[ "$(id -u)" = 0 ] || { log "debootstrap needs root"; exit 1; }

if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    MIRROR="${MIRROR:-http://deb.debian.org/debian}"
fi

ROOTFS=$(mktemp -d /var/tmp/mlops-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
start=$(date +%s)
log "debootstrap bookworm from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,libgomp1 \
    bookworm "$ROOTFS" "$MIRROR" >&2
# apt caches and lists are useless in the image (~100 MB)
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log
log "importing as $TAG"
tar -C "$ROOTFS" -c . | docker import \
    -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["python3"]' - "$TAG" >&2
log "done in $(( $(date +%s) - start )) s: $(docker image inspect -f '{{.Size}}' "$TAG") bytes"
echo "$TAG"
