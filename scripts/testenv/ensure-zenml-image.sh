#!/usr/bin/env bash
# Ensure the local Docker image TAG (default orcakit-zenml:latest) exists: the project's offline
# base image (ensure-base-image.sh) with ZenML 0.98 (zenml[local]: plain zenml misses modules
# local_docker's step entrypoint imports) and orcakit installed, for `pytest --flavor=zenml:local_docker`
# (the ZenML driver runs steps in it: DockerSettings(parent_image=TAG, skip_build=True)).
#
# Built OFFLINE: the wheels are downloaded on the host with pip (into a cache folder outside the
# repository) and installed with `pip install --no-index` inside `docker build --network none`.
#
# Usage: ensure-zenml-image.sh [TAG]
# Idempotent: the image is labelled with a key of the ZenML requirement and orcakit's sources;
# when the image with that key exists, this exits at once. Prints nothing on stdout.
#
# Env knobs: ORCAKIT_CACHE (cache root, default ~/.cache/orcakit), PYTHON (host python with pip,
# default python3).
set -euo pipefail

log() { printf '[ensure-zenml-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

TAG=${1:-orcakit-zenml:latest}
BASE=orcakit/python-base:bookworm
ZENML_REQUIREMENT='zenml[local]>=0.98,<0.99'
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${ORCAKIT_CACHE:-$HOME/.cache/orcakit}/zenml-image
PYTHON=${PYTHON:-python3}

"$HERE/ensure-base-image.sh" "$BASE"

# The key: what goes into the image. orcakit's packaged sources change it; tests do not.
KEY=$( (echo "$ZENML_REQUIREMENT"; echo "$BASE"; cat "$ROOT/pyproject.toml";
        cd "$ROOT" && git ls-files -co --exclude-standard spec conformance reference | LC_ALL=C sort | grep -v __pycache__ | xargs cat) \
      | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{ index .Config.Labels "orcakit.zenml.key" }}' "$TAG" 2>/dev/null || true)" = "$KEY" ]; then
    log "image $TAG is up to date ($KEY)"
    exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 900 9 || die "timed out waiting for lock $CACHE/.lock"
T0=$SECONDS
CONTEXT=$(mktemp -d "${TMPDIR:-/tmp}/orcakit-zenml-image.XXXXXX")
trap 'rm -rf "$CONTEXT"' EXIT
mkdir -p "$CONTEXT/orcakit" "$CACHE/wheels"

# orcakit as a wheel, built from the work tree without network (build and setuptools are in the
# dev venv); the wheel goes to the temp context, never to the repository.
VENV_PY="$ROOT/.venv/bin/python"
[ -x "$VENV_PY" ] || die "no $ROOT/.venv: run scripts/setup-venv dev first"
# Built from a copy of the files git knows (setuptools writes build/ and *.egg-info beside the
# sources; the repository stays untouched).
mkdir -p "$CONTEXT/src"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$CONTEXT/src"
(cd "$CONTEXT/src" && "$VENV_PY" -m build --wheel --no-isolation --outdir "$CONTEXT/orcakit" . >/dev/null) \
    || die "could not build the orcakit wheel"
PIP=("$PYTHON" -m pip)
# Every dependency as a wheel for the image's Python (the host's: both are 3.11), cached.
"${PIP[@]}" download --quiet --dest "$CACHE/wheels" --only-binary=:all: \
    --python-version 3.11 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform linux_x86_64 \
    "$CONTEXT"/orcakit/orcakit-*.whl "$ZENML_REQUIREMENT" 2>"$CONTEXT/pip.log" \
    || { tail -20 "$CONTEXT/pip.log" >&2; die "could not download the wheels for $ZENML_REQUIREMENT (a package registry must be reachable)"; }
cp "$CACHE"/wheels/*.whl "$CONTEXT/orcakit/" 2>/dev/null || true
# The orcakit wheel in the cache is this build's; keep only dependencies there.
rm -f "$CACHE"/wheels/orcakit-*.whl

rm -rf "$CONTEXT/src"
cat > "$CONTEXT/Dockerfile" <<EOF
FROM $BASE
COPY orcakit /wheels
RUN python3 -m venv /opt/zenml && /opt/zenml/bin/pip install --no-index --find-links /wheels --quiet \
        "$ZENML_REQUIREMENT" orcakit && rm -rf /wheels
ENV PATH=/opt/zenml/bin:\$PATH PYTHONUNBUFFERED=1 ZENML_ANALYTICS_OPT_IN=false
LABEL orcakit.zenml.key=$KEY
EOF
docker build --quiet --network none -t "$TAG" "$CONTEXT" >/dev/null || die "docker build of $TAG failed"
log "built $TAG ($KEY) in $((SECONDS - T0)) s"
