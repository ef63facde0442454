#!/usr/bin/env bash
# Installs DataFusion's Python package (the same engine, single process) into
# .venv-sql: the oracle of weir-sql's tests and a peer of its benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-sql
case "${1:-install}" in
  install)
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import datafusion" 2>/dev/null; then
      exit 0
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "datafusion==55.0.0"
    ;;
  *)
    echo "usage: scripts/sql-oracle.sh install" >&2
    exit 2
    ;;
esac
