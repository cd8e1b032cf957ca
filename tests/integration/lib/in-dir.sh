#!/usr/bin/env bash
# in-dir.sh DIR CMD...: runs CMD in DIR (relative to tests/integration).
cd "$(dirname "${BASH_SOURCE[0]}")/../$1" && shift && exec "$@"
