#!/usr/bin/env bash
# Ensure a container registry answers on 127.0.0.1:PORT (default 5000): Debian's
# `docker-registry` package (installed with apt-get when missing), started in the background with
# a config of its own (loopback only, no auth, storage under the cache folder) when nothing answers
# there. Prints the registry's address (host:port) on stdout. Idempotent.
# For `pytest --flavor=zenml:kubernetes`: ZenML's kubernetes orchestrator requires a container
# registry in its stack (127.0.0.1:PORT is what the ZenML driver registers, ORCAKIT_ZENML_REGISTRY).
set -euo pipefail

log() { printf '[ensure-registry] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PORT=${1:-5000}
ADDRESS=127.0.0.1:$PORT
STATE=${ORCAKIT_CACHE:-$HOME/.cache/orcakit}/registry

answers() { python3 - "$ADDRESS" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=3)
except Exception:
    sys.exit(1)
PY
}

if answers; then
    echo "$ADDRESS"
    exit 0
fi
if ! command -v docker-registry >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "docker-registry is not installed and this is not root: apt-get install docker-registry"
    log "installing Debian's docker-registry"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    apt-get install -y -qq docker-registry >/dev/null || die "apt-get install docker-registry failed"
fi
mkdir -p "$STATE/storage"
cat > "$STATE/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE/storage
  delete:
    enabled: true
http:
  addr: $ADDRESS
CONFIG
# setsid: the registry outlives this script (and the test run that started it), like dockerd
setsid docker-registry serve "$STATE/config.yml" >"$STATE/registry.log" 2>&1 < /dev/null &
for _ in $(seq 1 100); do
    answers && { log "registry serving on $ADDRESS"; echo "$ADDRESS"; exit 0; }
    sleep 0.1
done
tail -20 "$STATE/registry.log" >&2
die "the registry did not answer on $ADDRESS"
