#!/usr/bin/env bash
# Builds evans (a Go gRPC client: REPL and CLI) into .venv/bin for the e2e test
# tests/e2e/test_evans.py, from the Go module proxy, when Go is on the machine.
#
#   scripts/evans.sh    build if .venv/bin/evans is missing (a few minutes, once)
#
# evans is a tool of the tests, not a dependency of the project: without Go this
# prints why and exits 0, and the test says it was skipped and why.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION=v0.10.11
TARGET=.venv/bin/evans

if [[ -x $TARGET ]]; then exit 0; fi
if ! command -v go >/dev/null; then
  echo "[evans] no Go toolchain: tests/e2e/test_evans.py will be skipped" >&2
  exit 0
fi
echo "[evans] building github.com/ktr0731/evans@$VERSION into $TARGET" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A throwaway module: `go install pkg@version` also asks the proxy for the
# module's version list (deprecation check), which some mirrors refuse.
(
  cd "$work"
  go mod init evans-build >/dev/null 2>&1
  go get "github.com/ktr0731/evans@$VERSION" >/dev/null 2>&1
  go build -o evans github.com/ktr0731/evans
)
mv "$work/evans" "$TARGET"
echo "[evans] $("$TARGET" --version 2>&1 | head -1)" >&2
