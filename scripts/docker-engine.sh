#!/usr/bin/env bash
# Start a Docker engine of our own (socket, data root, exec root, pidfile under one short fixed directory) so
# that built images stay cached between CI runs on this machine. Idempotent: when our engine already answers,
# nothing is started. Prints the line to eval:  eval "$(scripts/docker-engine.sh)"  -> exports DOCKER_HOST.
#
#   MLOPS_DOCKER_DIR   where the engine keeps its state (default /var/tmp/mlops-docker; keep it short:
#                      unix socket paths are limited to ~100 bytes)
set -euo pipefail

D="${MLOPS_DOCKER_DIR:-/var/tmp/mlops-docker}"
SOCK="unix://$D/docker.sock"
log() { echo "docker-engine: $*" >&2; }

answers() { DOCKER_HOST="$SOCK" timeout 10 docker info >/dev/null 2>&1; }

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v docker >/dev/null 2>&1 || need_apt+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_apt+=(debootstrap)
if ((${#need_apt[@]})); then
    if [ "$(id -u)" != 0 ]; then
        log "missing ${need_apt[*]} and not root: install them (apt-get install -y docker.io debootstrap)"
        exit 1
    fi
    log "installing ${need_apt[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

mkdir -p "$D"
if answers; then
    log "engine already answers at $SOCK"
else
    if [ -f "$D/dockerd.pid" ] && kill -0 "$(cat "$D/dockerd.pid")" 2>/dev/null; then
        log "dockerd $(cat "$D/dockerd.pid") runs but does not answer yet"
    else
        rm -f "$D/dockerd.pid" "$D/docker.sock"
        log "starting dockerd (data root $D/root, log $D/dockerd.log)"
        # setsid + nohup: the engine outlives the CI step that started it, so the image cache stays warm
        setsid nohup dockerd --data-root "$D/root" --exec-root "$D/exec" -H "$SOCK" \
            --pidfile "$D/dockerd.pid" >>"$D/dockerd.log" 2>&1 </dev/null &
    fi
    for _ in $(seq 1 60); do
        answers && break
        sleep 1
    done
    if ! answers; then
        log "dockerd did not answer within 60 s; last lines of $D/dockerd.log:"
        tail -n 20 "$D/dockerd.log" >&2 || true
        exit 1
    fi
    log "engine answers at $SOCK"
fi
echo "export DOCKER_HOST=$SOCK"
