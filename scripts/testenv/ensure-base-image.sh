#!/usr/bin/env bash
# Ensure the local Docker image TAG (default orcakit/python-base:bookworm)
# exists: a minimal Debian bookworm rootfs with python3 (3.11), venv, pip and
# ca-certificates, built OFFLINE (no image registry) with debootstrap from the
# same Debian mirror apt uses, then `docker import`ed.
#
# Usage: ensure-base-image.sh [TAG]
#
# Fast path: image already present -> exit 0 (~0.1 s).
# The rootfs tarball is cached under ${ORCAKIT_CACHE:-$HOME/.cache/orcakit}/base-image/
# so a rebuild after `docker rmi` only re-imports (a few seconds).
#
# Env knobs:
#   ORCAKIT_CACHE          cache root (default ~/.cache/orcakit)
#   ORCAKIT_DEBIAN_MIRROR  override the mirror (default: taken from apt sources)
#   ORCAKIT_BASE_REBUILD=1 ignore the cached tarball and re-run debootstrap
set -euo pipefail

log() { printf '[ensure-base-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

TAG=${1:-orcakit/python-base:bookworm}
SUITE=bookworm
INCLUDE=python3,python3-venv,python3-pip,ca-certificates
RECIPE_VERSION=1   # bump when the rootfs recipe below changes (invalidates the cache)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${ORCAKIT_CACHE:-$HOME/.cache/orcakit}/base-image
export DEBIAN_FRONTEND=noninteractive

have_image() { docker image inspect "$TAG" >/dev/null 2>&1; }

# --- 0. need a docker daemon --------------------------------------------------
if ! timeout 10 docker info >/dev/null 2>&1; then
    log "docker daemon not answering; running ensure-docker.sh"
    "$HERE/ensure-docker.sh"
fi

if have_image; then
    log "image $TAG already present"
    exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 900 9 || die "timed out waiting for lock $CACHE/.lock"
if have_image; then
    log "image $TAG appeared while waiting for lock"
    exit 0
fi

T0=$SECONDS
ARCH=$(dpkg --print-architecture)
KEY=$(printf '%s|%s|%s|%s' "$SUITE" "$ARCH" "$INCLUDE" "$RECIPE_VERSION" | sha256sum | cut -c1-12)
TARBALL="$CACHE/python-base-$SUITE-$ARCH-$KEY.tar"

# --- 1. rootfs tarball (cached) ---------------------------------------------
detect_mirror() {
    # First URI serving suite $SUITE in apt's own configuration
    # (one-line *.list format and deb822 *.sources format).
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v s="$SUITE" '
            /^[[:space:]]*deb[[:space:]]/ {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$SUITE" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && enabled != "no" && uri != "") print uri
                types = ""; suites = ""; uri = ""; enabled = ""
            }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            tolower($1) == "types:"   { $1 = ""; types = $0 }
            tolower($1) == "suites:"  { $1 = ""; suites = $0 }
            tolower($1) == "uris:"    { uri = $2 }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { flush() }' "$f"
    done
}

build_dir=""
cleanup() {
    if [ -n "$build_dir" ] && [ -d "$build_dir" ]; then
        # debootstrap mounts proc/sys inside the target; never rm across mounts.
        awk -v d="$build_dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" 2>/dev/null || true; done
        rm -rf --one-file-system "$build_dir"
    fi
    rm -f "$TARBALL.tmp"
}
trap cleanup EXIT

if [ -s "$TARBALL" ] && [ "${ORCAKIT_BASE_REBUILD:-0}" != 1 ]; then
    log "using cached rootfs $TARBALL"
else
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
    MIRROR=${ORCAKIT_DEBIAN_MIRROR:-$(detect_mirror | head -n1)}
    MIRROR=${MIRROR:-http://deb.debian.org/debian}

    missing=()
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [ -s /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
    if [ ${#missing[@]} -gt 0 ]; then
        APT_LOG=/var/log/orcakit-testenv-apt.log
        log "apt-get update && apt-get install ${missing[*]} (log: $APT_LOG)"
        { apt-get -o DPkg::Lock::Timeout=120 update &&
          apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends "${missing[@]}"; } >>"$APT_LOG" 2>&1 9>&- ||
            { tail -n 30 "$APT_LOG" >&2; die "apt-get install ${missing[*]} failed"; }
    fi

    build_dir=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    chmod 755 "$build_dir"
    log "debootstrap --variant=minbase --include=$INCLUDE $SUITE from $MIRROR (takes a minute or two)"
    if ! debootstrap --variant=minbase --include="$INCLUDE" --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
            "$SUITE" "$build_dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 30 "$CACHE/debootstrap.log" >&2
        [ -f "$build_dir/debootstrap/debootstrap.log" ] && tail -n 30 "$build_dir/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (log: $CACHE/debootstrap.log)"
    fi
    log "debootstrap done after $((SECONDS - T0)) s; slimming rootfs"

    r=$build_dir
    # Keep docs/man/locales out of any package installed later (like debian:*-slim).
    mkdir -p "$r/etc/dpkg/dpkg.cfg.d"
    cat >"$r/etc/dpkg/dpkg.cfg.d/01-orcakit-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF
    cat >"$r/etc/apt/apt.conf.d/01-orcakit-slim" <<'EOF'
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/groff/* "$r"/usr/share/lintian/* \
        "$r"/usr/share/locale/* "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin \
        "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old \
        "$r"/var/log/* "$r"/tmp/* "$r"/var/tmp/* "$r"/root/.cache "$r"/debootstrap
    mkdir -p "$r/var/lib/apt/lists/partial" "$r/var/log/apt"
    : >"$r/etc/machine-id"
    : >"$r/etc/hostname"; rm -f "$r/etc/resolv.conf"; : >"$r/etc/resolv.conf"   # docker bind-mounts these
    # This is a disposable test image: let `pip install` target the system
    # interpreter directly (PEP 668 marker from Debian removed).
    rm -f "$r"/usr/lib/python3.*/EXTERNALLY-MANAGED

    log "writing rootfs tarball"
    tar --numeric-owner -C "$r" -cf "$TARBALL.tmp" \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' .
    mv -f "$TARBALL.tmp" "$TARBALL"
    rm -rf --one-file-system "$build_dir"; build_dir=""
    # drop stale tarballs from older recipes
    find "$CACHE" -maxdepth 1 -name "python-base-*.tar" ! -path "$TARBALL" -delete
    log "rootfs cached: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
fi

# --- 2. import ----------------------------------------------------------------
log "docker import -> $TAG"
docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
    --change 'ENV PIP_ROOT_USER_ACTION=ignore' \
    --change "LABEL org.orcakit.base-image.key=$KEY" \
    --change 'CMD ["python3"]' \
    - "$TAG" <"$TARBALL" >/dev/null

# --- 3. verify ----------------------------------------------------------------
fail() {
    docker rmi -f "$TAG" >/dev/null 2>&1 || true
    rm -f "$TARBALL"
    die "$1 (removed image and cached tarball; rerun to rebuild)"
}
pyver=$(docker run --rm "$TAG" python3 -c 'import sys, venv; print(sys.version)') || fail "python3 check failed in $TAG"
case "$pyver" in 3.11.*) ;; *) fail "expected Python 3.11 in $TAG, got: $pyver" ;; esac
pipver=$(docker run --rm "$TAG" python3 -m pip --version) || fail "pip check failed in $TAG"
size=$(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1000/1000}')
log "OK $TAG: python ${pyver%% *}, ${pipver%% from*}, $size, took $((SECONDS - T0)) s"
