#!/usr/bin/env bash
# Regenerates everything generated from protos/ (the only way it may change):
#   gen/cqrs/...          _pb2 + _pb2_grpc + .pyi (grpcio server hot path, typed grpcio clients)
#   gen/buf/validate/...  _pb2 + .pyi of protovalidate's rules (vendored in protos/third_party),
#                         which the contracts import; no PyPI package ships them for google.protobuf
#   gen/cqrs/descriptor_set.binpb   FileDescriptorSet with imports and source info
#                          (feeds reflection, so grpcurl describe shows comments, and the gateway)
#   clients/python/src/cqrs_users_client/proto/...   betterproto dataclasses and async stubs of
#                          the client package (the contracts plus google.rpc's error details)
#   gateway/docs/vendor/  Swagger UI's browser files, copied from node_modules (package.json pins it)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-$root/.venv/bin/python}"
export PATH="$root/.venv/bin:$PATH"   # protoc-gen-python_betterproto, protoc-gen-mypy*

mapfile -t files < <(cd protos && find cqrs -name '*.proto' | LC_ALL=C sort)
client=clients/python/src/cqrs_users_client/proto

rm -rf gen/cqrs gen/buf gen/cqrs_client "$client"
mkdir -p gen/cqrs gen/buf "$client"

"$py" -m grpc_tools.protoc -Iprotos -Iprotos/third_party \
  --python_out=gen --grpc_python_out=gen \
  --mypy_out=gen --mypy_grpc_out=gen \
  "${files[@]}"

"$py" -m grpc_tools.protoc -Iprotos/third_party \
  --python_out=gen --mypy_out=gen \
  buf/validate/validate.proto

# betterproto writes every file of the request, imports included; the client
# keeps the services' packages and google.rpc (error details), not the
# option-only packages (access, validation, http options, privacy, buf.validate, google.api).
"$py" -m grpc_tools.protoc -Iprotos -Iprotos/third_party \
  --python_betterproto_out="$client" \
  "${files[@]}" google/rpc/status.proto google/rpc/error_details.proto
rm -rf "$client/buf" "$client/google/api" "$client/cqrs/access" "$client/cqrs/validation" \
  "$client/cqrs/httpopts" "$client/cqrs/privacy"

npx --no-install buf build -o gen/cqrs/descriptor_set.binpb

# protoc writes modules but no packages; setuptools and mypy need __init__.py.
find gen/cqrs gen/buf "$client" -type d -exec sh -c 'test -f "$1/__init__.py" || : > "$1/__init__.py"' _ {} \;
cat > gen/README.md <<'MD'
# gen/ — generated code, never edited by hand

Regenerate with `make gen` (runs `scripts/gen.sh`) after changing `protos/`.
`make test` fails when this folder is stale.

- `cqrs/` — protobuf `_pb2`, grpcio `_pb2_grpc` and their `.pyi` stubs (import as `cqrs.eventstore.v1.event_store_pb2`).
- `buf/validate/` — protovalidate's rule messages (`buf/validate/validate.proto`, vendored under `protos/third_party/`), imported by the contracts' `_pb2` modules.
- `cqrs/descriptor_set.binpb` — the FileDescriptorSet (with comments) behind reflection, the gateway and request validation.

The betterproto client code is generated into the client package,
`clients/python/src/cqrs_users_client/proto/` (see `clients/python/README.md`).
MD

# Swagger UI for the gateway's /docs page: the files it serves, from the npm
# package pinned in package.json (installed by `make install`), with its license.
docs=gateway/docs/vendor
rm -rf "$docs" && mkdir -p "$docs"
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
  cp "node_modules/swagger-ui-dist/$f" "$docs/$f"
done
echo "gen/, $client and $docs regenerated from ${#files[@]} proto files"
