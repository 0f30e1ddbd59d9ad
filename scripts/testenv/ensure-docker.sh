#!/usr/bin/env bash
# Ensure a Docker daemon answers `docker info`.
#
# Fast path: if `docker info` already works, exit 0 (~0.1 s).
# Cold path (fresh machine, no systemd): install Debian's docker.io (which
# provides /usr/sbin/dockerd + containerd + runc), start dockerd detached in
# the background (log: $ORCAKIT_DOCKERD_LOG, default
# /var/log/orcakit-dockerd.log), wait up to 60 s for it and smoke-test
# `docker run --rm` with a tiny image imported from host binaries.
#
# Env knobs:
#   ORCAKIT_DOCKER_STORAGE_DRIVER  force a storage driver (default: overlay2 if
#                                  an overlay mount works here, else vfs)
#   ORCAKIT_DOCKERD_LOG            dockerd log file
#   ORCAKIT_DOCKER_WAIT            seconds to wait for the daemon (default 60)
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

DOCKERD_LOG=${ORCAKIT_DOCKERD_LOG:-/var/log/orcakit-dockerd.log}
WAIT_SECS=${ORCAKIT_DOCKER_WAIT:-60}
SMOKE_TAG=orcakit/smoke:local
export DEBIAN_FRONTEND=noninteractive

docker_ok() { timeout 10 docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && docker_ok; then
    log "docker daemon already answering"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root to install/start dockerd"

# Serialise concurrent callers (e.g. parallel test workers).
exec 9>/run/orcakit-ensure-docker.lock
flock -w 300 9 || die "timed out waiting for lock /run/orcakit-ensure-docker.lock"
if command -v docker >/dev/null 2>&1 && docker_ok; then
    log "docker daemon came up while waiting for lock"
    exit 0
fi

APT_LOG=/var/log/orcakit-testenv-apt.log
apt_updated=0
apt_run() {  # quiet apt; full output in $APT_LOG, shown only on failure
    if ! apt-get -o DPkg::Lock::Timeout=120 "$@" >>"$APT_LOG" 2>&1 9>&-; then
        tail -n 30 "$APT_LOG" >&2; die "apt-get $* failed (full log: $APT_LOG)"
    fi
}
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        apt_run update
        apt_updated=1
    fi
    log "apt-get install $* (log: $APT_LOG)"
    apt_run install -y --no-install-recommends "$@"
}

# --- 1. binaries --------------------------------------------------------------
DOCKERD=$(command -v dockerd || true)
[ -n "$DOCKERD" ] || { [ -x /usr/sbin/dockerd ] && DOCKERD=/usr/sbin/dockerd; } || true
if [ -z "$DOCKERD" ]; then
    # /usr/local/bin/docker may exist as a client only; the daemon comes from docker.io.
    apt_install docker.io
    DOCKERD=/usr/sbin/dockerd
    [ -x "$DOCKERD" ] || die "docker.io installed but $DOCKERD missing"
fi
command -v docker >/dev/null 2>&1 || die "no docker client on PATH"

# --- 2. start dockerd (unless one is already starting) -----------------------
dockerd_running() {
    local pid
    [ -s /var/run/docker.pid ] || return 1
    pid=$(cat /var/run/docker.pid 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q dockerd "/proc/$pid/comm" 2>/dev/null
}

wait_for_docker() {
    local deadline=$((SECONDS + WAIT_SECS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        docker_ok && return 0
        # Give up early if the daemon we launched already died.
        if [ -n "${1:-}" ] && ! kill -0 "$1" 2>/dev/null; then
            return 1
        fi
        sleep 0.5
    done
    return 1
}

pick_storage_driver() {
    if [ -n "${ORCAKIT_DOCKER_STORAGE_DRIVER:-}" ]; then
        echo "$ORCAKIT_DOCKER_STORAGE_DRIVER"; return
    fi
    # Probe an overlay mount on the filesystem backing /var/lib/docker.
    mkdir -p /var/lib/docker
    local d
    d=$(mktemp -d /var/lib/docker/.overlay-probe.XXXXXX)
    mkdir -p "$d/l" "$d/u" "$d/w" "$d/m"
    if mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
        umount "$d/m"; rm -rf "$d"; echo overlay2
    else
        rm -rf "$d"; echo vfs
    fi
}

start_dockerd() {
    local driver=$1; shift
    local args=(--host=unix:///var/run/docker.sock "$@")
    # Don't pass a flag that /etc/docker/daemon.json also sets (dockerd refuses that).
    if ! grep -qs '"storage-driver"' /etc/docker/daemon.json; then
        args+=(--storage-driver="$driver")
    fi
    log "starting $DOCKERD ${args[*]} (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    printf '\n==== %s orcakit ensure-docker: dockerd %s ====\n' "$(date -Is)" "${args[*]}" >>"$DOCKERD_LOG"
    # setsid + nohup + redirects: fully detached, survives this script and its caller.
    # 9>&- : the daemon must not inherit (and thus hold forever) our flock fd.
    setsid nohup "$DOCKERD" "${args[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null 9>&- &
    DOCKERD_PID=$!
}

if dockerd_running; then
    log "dockerd (pid $(cat /var/run/docker.pid)) already running; waiting for it to answer"
    wait_for_docker "" || { tail -n 40 "$DOCKERD_LOG" >&2 2>/dev/null || true; die "dockerd running but not answering after ${WAIT_SECS}s"; }
else
    # Make sure cgroup v1 hierarchies are mounted (no systemd to do it for us).
    if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -d /sys/fs/cgroup/memory ]; then
        log "WARNING: no cgroup hierarchy found under /sys/fs/cgroup; dockerd may fail"
    fi

    extra=()
    # iptables: docker needs a working iptables (nft or legacy) for bridge NAT.
    if command -v iptables >/dev/null 2>&1 && ! iptables -t nat -L -n >/dev/null 2>&1; then
        if command -v iptables-legacy >/dev/null 2>&1 && iptables-legacy -t nat -L -n >/dev/null 2>&1; then
            log "nftables iptables backend not usable; switching alternatives to iptables-legacy"
            update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
            update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null 2>&1 || true
        else
            log "WARNING: iptables unusable; starting dockerd with --iptables=false (no NAT for containers)"
            extra+=(--iptables=false --ip-masq=false)
        fi
    fi

    driver=$(pick_storage_driver)
    [ "$driver" = overlay2 ] || log "WARNING: overlay mount not usable here; using storage driver '$driver'"
    start_dockerd "$driver" "${extra[@]}"
    if ! wait_for_docker "$DOCKERD_PID"; then
        if [ "$driver" = overlay2 ] && [ -z "${ORCAKIT_DOCKER_STORAGE_DRIVER:-}" ] \
            && ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            log "dockerd failed with overlay2; retrying with storage driver vfs"
            tail -n 15 "$DOCKERD_LOG" >&2 || true
            driver=vfs
            start_dockerd "$driver" "${extra[@]}"
            wait_for_docker "$DOCKERD_PID" || { tail -n 40 "$DOCKERD_LOG" >&2 || true; die "dockerd did not come up within ${WAIT_SECS}s (see $DOCKERD_LOG)"; }
        else
            tail -n 40 "$DOCKERD_LOG" >&2 || true
            die "dockerd did not come up within ${WAIT_SECS}s (see $DOCKERD_LOG)"
        fi
    fi
fi

log "docker up: server $(docker version --format '{{.Server.Version}}' 2>/dev/null), storage driver $(docker info --format '{{.Driver}}' 2>/dev/null), cgroup $(docker info --format '{{.CgroupVersion}}' 2>/dev/null)"

# --- 3. smoke test: `docker run --rm` of a locally imported image -------------
# No registry is reachable, so import a tiny rootfs made of host binaries.
if ! docker image inspect "$SMOKE_TAG" >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    for f in /bin/sh /bin/echo; do
        real=$(readlink -f "$f")
        for lib in "$real" $(ldd "$real" 2>/dev/null | grep -o '/[^ ]*' || true); do
            mkdir -p "$tmp$(dirname "$lib")"; cp -L "$lib" "$tmp$lib"
        done
        mkdir -p "$tmp$(dirname "$f")"; [ -e "$tmp$f" ] || cp -L "$real" "$tmp$f"
    done
    # merged-/usr hosts: make /lib64 etc. resolve inside the image as well
    for d in lib lib64 bin; do
        if [ -L "/$d" ] && [ ! -e "$tmp/$d" ]; then ln -s "usr/$d" "$tmp/$d"; fi
    done
    tar -C "$tmp" -c . | docker import - "$SMOKE_TAG" >/dev/null
fi
out=$(docker run --rm "$SMOKE_TAG" /bin/sh -c 'echo orcakit-smoke-ok' 2>&1) || true
if [ "$out" != "orcakit-smoke-ok" ]; then
    printf '%s\n' "$out" >&2
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    die "'docker run --rm $SMOKE_TAG' failed"
fi
log "docker run --rm smoke test OK"
