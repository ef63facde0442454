#!/usr/bin/env bash
# Runs weir's whole test suite on a fresh machine: installs what is missing
# (idempotently), checks formatting and lints, then runs every test and doctest.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

log "tools"
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi
for component in clippy rustfmt; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        rustup component add "$component"
    fi
done

log "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log "doctests"
cargo test --workspace --doc --locked

log "tests"
cargo nextest run --workspace --locked --no-fail-fast
