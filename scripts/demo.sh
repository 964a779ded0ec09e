#!/usr/bin/env bash
# The whole chain on the bundled seed-style wine script, on this machine, with no Docker and no Jenkins:
# push the example to a local bare repository, then `mlops run` pulls, detects, trains, evaluates, tweaks
# and retrains until held-out accuracy passes 0.90, and leaves the notification in the workspace's outbox.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
demo=${MLOPS_DEMO_DIR:-$root/.mlops-demo}
rm -rf "$demo" && mkdir -p "$demo"
cp -r "$root/models/wine-seed" "$demo/src"
git -C "$demo/src" init -q -b main
git -C "$demo/src" add -A
git -C "$demo/src" -c user.name=demo -c user.email=demo@localhost commit -q -m "seed-style wine model"
git clone -q --bare "$demo/src" "$demo/model.git"
mlops run --workspace "$demo/ws" --repo "$demo/model.git" --threshold 0.90
echo
echo "workspace: $demo/ws (best model in best/, notification in outbox/)"
ls "$demo/ws/outbox"
