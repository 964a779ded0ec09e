#!/usr/bin/env bash
# CI: a real Docker engine with both training images, for the tests marked `docker`.
#   eval "$(scripts/ci-docker.sh)"      -> exports DOCKER_HOST (and MLOPS_BASE_IMAGE) into the calling shell
# Starts (or reuses) our own dockerd (scripts/docker-engine.sh), builds the registry-free base image once
# (scripts/base-image.sh), then `mlops images build`, which skips images whose content-hash tag exists.
# Everything stays cached under MLOPS_DOCKER_DIR (default /var/tmp/mlops-docker) between runs on one machine.
# All progress goes to stderr; stdout carries only the export lines.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
BASE_TAG="${MLOPS_BASE_IMAGE:-mlops-local/python-base:bookworm}"
log() { echo "ci-docker: $*" >&2; }

engine_env=$(scripts/docker-engine.sh)
eval "$engine_env"
export DOCKER_HOST

start=$(date +%s)
scripts/base-image.sh "$BASE_TAG" >/dev/null
log "base image $BASE_TAG ready ($(( $(date +%s) - start )) s)"

ca_args=()
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    ca_args=(--extra-ca /etc/ssl/certs/ca-certificates.crt)   # this host's proxy CA: pip must trust it
fi
start=$(date +%s)
"$PYTHON" -m mlops_cli images build --profile all --base-image "$BASE_TAG" "${ca_args[@]}" --quiet >&2
log "images ready ($(( $(date +%s) - start )) s)"

echo "export DOCKER_HOST=$DOCKER_HOST"
echo "export MLOPS_BASE_IMAGE=$BASE_TAG"
