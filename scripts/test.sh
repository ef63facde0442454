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

log "build tools (a C compiler and make: librdkafka is built from source, without cmake)"
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q build-essential
fi
# nothing may need cmake: the README's first command must build without it
export CMAKE=/bin/false

log "kafka broker (tests start their own, on free ports)"
scripts/kafka.sh install

log "data (MovieLens 100K for ALS, breast cancer for CoCoA; fetched, never committed)"
scripts/data.sh movielens
scripts/data.sh breast-cancer

log "DataFusion's Python package (the oracle of the SQL tests)"
scripts/sql-oracle.sh install

log "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log "docs (broken links fail) and doctests"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
cargo test --workspace --doc --locked

log "tests"
cargo nextest run --workspace --locked --no-fail-fast
