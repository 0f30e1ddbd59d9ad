#!/usr/bin/env bash
# Ensure headless Chromium (Debian's `chromium` package) is installed: tests/test_report.py
# renders report.html in it and checks that the verdict and the first failure are in the
# first screen. Fast path: already installed (~0 s). Cold path: apt-get update + install
# (about a minute, ~100 MB). Idempotent.
set -euo pipefail
log() { printf '[ensure-chromium] %s\n' "$*" >&2; }
if command -v chromium >/dev/null 2>&1; then
    log "chromium already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    log "ERROR: chromium is missing and installing it needs root: run 'apt-get update && apt-get install -y chromium' as root"
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log "installing Debian's chromium"
apt-get update -q >&2
apt-get install -y -q --no-install-recommends chromium >&2
command -v chromium >/dev/null 2>&1 || { log "ERROR: chromium not on PATH after installing"; exit 1; }
log "chromium installed: $(chromium --version 2>/dev/null || true)"
