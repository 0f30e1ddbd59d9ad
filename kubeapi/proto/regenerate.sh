#!/usr/bin/env bash
# Regenerate kubernetes.desc: the compiled descriptors (a protobuf FileDescriptorSet) of the
# Kubernetes messages the environment decodes and encodes for `application/vnd.kubernetes.protobuf`.
#
# Sources: the generated.proto files of github.com/kubernetes/api and
# github.com/kubernetes/apimachinery (what go-to-protobuf generates from the Go types; the same
# files client-go's protobuf serializer is built from). The commits used last are in SOURCES.
#
# Usage: regenerate.sh API_CHECKOUT APIMACHINERY_CHECKOUT
#   (two clones/work trees of those repositories; protoc comes from PyPI's grpcio-tools in a
#   throwaway virtual environment, so no system protoc is needed)
#
# A descriptor set rather than *_pb2.py modules: the server builds the message classes at run time
# with google.protobuf's descriptor pool, so there is no generated-code/runtime version coupling
# and no `k8s.io...` package path to put on sys.path.
set -euo pipefail
api=$(cd "$1" && pwd); machinery=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/k8s.io"
ln -s "$api" "$work/src/k8s.io/api"
ln -s "$machinery" "$work/src/k8s.io/apimachinery"
uv venv -q "$work/venv" && uv pip install -q --python "$work/venv/bin/python" grpcio-tools
groups="core/v1 batch/v1 rbac/v1 authorization/v1 authentication/v1 events/v1"
files=()
for g in $groups; do files+=("k8s.io/api/$g/generated.proto"); done
(cd "$work/src" && "$work/venv/bin/python" -m grpc_tools.protoc -I. --include_imports \
   --descriptor_set_out="$here/kubernetes.desc" "${files[@]}")
{
  echo "k8s.io/api $(git -C "$api" rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "k8s.io/apimachinery $(git -C "$machinery" rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "protoc $("$work/venv/bin/python" -m grpc_tools.protoc --version)"
  echo "groups $groups"
} > "$here/SOURCES"
echo "wrote $here/kubernetes.desc" >&2
