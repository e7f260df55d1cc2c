#!/usr/bin/env bash
# Prints the buf input that `buf breaking` compares the working tree with:
# the main branch, or on main with a clean tree the previous commit; nothing
# when there is no earlier commit holding protos/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
branch=$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo "")
ref=main
if [ "$branch" = main ] && git diff --quiet HEAD -- protos buf.yaml 2>/dev/null; then
  ref=HEAD~1
fi
if git cat-file -e "$ref:buf.yaml" 2>/dev/null && git cat-file -e "$ref:protos" 2>/dev/null; then
  echo ".git#ref=$ref"
fi
