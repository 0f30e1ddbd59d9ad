#!/usr/bin/env bash
# Ensure the local Docker image TAG (default orcakit-zenml-kubernetes:latest) exists: the ZenML
# step image (ensure-zenml-image.sh: ZenML 0.98 + orcakit) with ZenML's kubernetes integration's
# requirements added, in the client version ZenML pins (kubernetes>=21.7,<26; orcakit's own
# kubernetes extra needs >=31, hence an image of its own). `pytest --flavor=zenml:kubernetes` runs
# ZenML's orchestrator pod and step pods in it (the orchestrator pod creates the step pods with
# that client).
#
# Built OFFLINE like ensure-zenml-image.sh: wheels downloaded on the host into a cache, installed
# with `pip install --no-index` inside `docker build --network none`.
# Idempotent (labelled with a key of its inputs); prints nothing on stdout.
set -euo pipefail

log() { printf '[ensure-zenml-kubernetes-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

TAG=${1:-orcakit-zenml-kubernetes:latest}
BASE=${ORCAKIT_ZENML_IMAGE:-orcakit-zenml:latest}
# ZenML 0.98's KubernetesIntegration.REQUIREMENTS
REQUIREMENTS=('kubernetes>=21.7,<26' 'Jinja2')
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${ORCAKIT_CACHE:-$HOME/.cache/orcakit}/zenml-kubernetes-image
PYTHON=${PYTHON:-python3}

"$HERE/ensure-zenml-image.sh" "$BASE"
BASE_ID=$(docker image inspect -f '{{.Id}}' "$BASE")
KEY=$( (echo "${REQUIREMENTS[*]}"; echo "$BASE_ID") | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{ index .Config.Labels "orcakit.zenml-kubernetes.key" }}' "$TAG" 2>/dev/null || true)" = "$KEY" ]; then
    log "image $TAG is up to date ($KEY)"
    exit 0
fi
mkdir -p "$CACHE/wheels"
exec 9>"$CACHE/.lock"
flock -w 900 9 || die "timed out waiting for lock $CACHE/.lock"
T0=$SECONDS
CONTEXT=$(mktemp -d "${TMPDIR:-/tmp}/orcakit-zenml-kubernetes-image.XXXXXX")
trap 'rm -rf "$CONTEXT"' EXIT
"$PYTHON" -m pip download --quiet --dest "$CACHE/wheels" --only-binary=:all: \
    --python-version 3.11 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform linux_x86_64 "${REQUIREMENTS[@]}" 2>"$CONTEXT/pip.log" \
    || { tail -20 "$CONTEXT/pip.log" >&2; die "could not download the wheels for ${REQUIREMENTS[*]} (a package registry must be reachable)"; }
mkdir -p "$CONTEXT/wheels"
cp "$CACHE"/wheels/*.whl "$CONTEXT/wheels/"
req=$(printf '"%s" ' "${REQUIREMENTS[@]}")
cat > "$CONTEXT/Dockerfile" <<DOCKERFILE
FROM $BASE
COPY wheels /wheels
RUN /opt/zenml/bin/pip install --no-index --find-links /wheels --quiet $req && rm -rf /wheels
LABEL orcakit.zenml-kubernetes.key=$KEY
DOCKERFILE
docker build --quiet --network none -t "$TAG" "$CONTEXT" >/dev/null || die "docker build of $TAG failed"
log "built $TAG ($KEY) in $((SECONDS - T0)) s"
