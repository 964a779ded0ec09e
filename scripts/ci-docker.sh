#!/usr/bin/env bash
# CI: a real Docker engine with the training images the tests use (keras, sklearn, keras2), for the tests marked `docker`.
#   scripts/ci-docker.sh [ENV_FILE]   writes `export DOCKER_HOST=...` (and MLOPS_BASE_IMAGE) to ENV_FILE, else
#                                     to stdout: `eval "$(scripts/ci-docker.sh)"`
# Starts (or reuses) our own dockerd (scripts/docker-engine.sh), builds the registry-free base image once
# (scripts/base-image.sh), then `mlops images build`, which skips images whose content-hash tag exists.
# Everything stays cached under MLOPS_DOCKER_DIR (default /var/tmp/mlops-docker) between runs on one machine.
# Progress goes to stderr. PYTHON: the interpreter with mlops' dependencies (default .venv/bin/python, made
# by `make install` when missing).
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${1:-/dev/stdout}"
if [ -z "${PYTHON:-}" ]; then
    [ -x .venv/bin/python ] || make install >&2
    PYTHON=.venv/bin/python
fi
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
# every runtime the tests train in Docker; not torch (PyPI's Linux torch wheel is the CUDA build, several GB)
for runtime in ${MLOPS_CI_RUNTIMES:-sklearn keras keras2}; do
    "$PYTHON" -m mlops_cli images build --runtime "$runtime" --base-image "$BASE_TAG" "${ca_args[@]}" --quiet >&2
done
log "images ready ($(( $(date +%s) - start )) s)"

printf 'export DOCKER_HOST=%s\nexport MLOPS_BASE_IMAGE=%s\n' "$DOCKER_HOST" "$BASE_TAG" >"$OUT"
