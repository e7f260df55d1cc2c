#!/usr/bin/env bash
# Regenerates everything in gen/ from protos/ (the only way gen/ may change):
#   gen/cqrs/...          _pb2 + _pb2_grpc + .pyi (grpcio server hot path, typed grpcio clients)
#   gen/cqrs_client/...   betterproto dataclasses (the typed async client users get)
#   gen/cqrs/descriptor_set.binpb   FileDescriptorSet with imports and source info
#                          (feeds reflection, so grpcurl describe shows comments, and the gateway)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-$root/.venv/bin/python}"
export PATH="$root/.venv/bin:$PATH"   # protoc-gen-python_betterproto, protoc-gen-mypy*

mapfile -t files < <(cd protos && find cqrs -name '*.proto' | LC_ALL=C sort)

rm -rf gen/cqrs gen/cqrs_client
mkdir -p gen/cqrs gen/cqrs_client

"$py" -m grpc_tools.protoc -Iprotos -Iprotos/third_party \
  --python_out=gen --grpc_python_out=gen \
  --mypy_out=gen --mypy_grpc_out=gen \
  "${files[@]}"

"$py" -m grpc_tools.protoc -Iprotos -Iprotos/third_party \
  --python_betterproto_out=gen/cqrs_client \
  "${files[@]}"

npx --no-install buf build -o gen/cqrs/descriptor_set.binpb

# protoc writes modules but no packages; setuptools and mypy need __init__.py.
find gen/cqrs gen/cqrs_client -type d -exec sh -c 'test -f "$1/__init__.py" || : > "$1/__init__.py"' _ {} \;
cat > gen/README.md <<'MD'
# gen/ — generated code, never edited by hand

Regenerate with `make gen` (runs `scripts/gen.sh`) after changing `protos/`.
`make test` fails when this folder is stale.

- `cqrs/` — protobuf `_pb2`, grpcio `_pb2_grpc` and their `.pyi` stubs (import as `cqrs.eventstore.v1.event_store_pb2`).
- `cqrs_client/` — betterproto 2.0.0b7 dataclasses and async stubs (import as `cqrs_client.cqrs.eventstore.v1`).
- `cqrs/descriptor_set.binpb` — the FileDescriptorSet (with comments) behind reflection and the gateway.
MD
echo "gen/ regenerated from ${#files[@]} proto files"
