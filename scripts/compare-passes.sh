#!/usr/bin/env bash
# Runs two builds' `unetseg-bench --sections passes` in turns (old, new, new, old, ...) and prints
# per layout and mode the median over the rounds of each column, old beside new: the way to
# compare a change to the frame path's passes on a shared machine, where only figures measured
# close together in time compare.
#
# usage: scripts/compare-passes.sh OLD_BENCH NEW_BENCH ROUNDS [unetseg-bench options ...]
#   e.g. scripts/compare-passes.sh /tmp/old/build/tools/unetseg-bench build/tools/unetseg-bench 5 \
#          --model selfie --threads 1 --frames 40
set -euo pipefail
old=$1 new=$2 rounds=$3
shift 3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((i = 0; i < rounds; i++)); do
  if ((i % 2 == 0)); then order=(old new); else order=(new old); fi
  for which in "${order[@]}"; do
    bench=$old
    [ "$which" = new ] && bench=$new
    "$bench" --sections passes "$@" >"$out/$which.$i" 2>/dev/null
  done
done
/usr/bin/python3 - "$out" "$rounds" <<'PY'
import glob, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
cols = ["memcpy", "preprocess", "mask+stat", "draw", "total", "copies", "allocs"]
data = {}
for which in ("old", "new"):
    for i in range(rounds):
        header = None
        for line in open(os.path.join(out, f"{which}.{i}")):
            f = line.split()
            if f[:3] == ["size", "layout", "mode"]:
                header = f
                continue
            if header and len(f) >= 10 and f[0][0].isdigit():
                key = (f[0], f[1], f[2])
                for c, v in zip(cols, f[3:10]):
                    data.setdefault((which, key, c), []).append(float(v))
keys = sorted({k for (_, k, _) in data}, key=lambda k: (k[0], k[1]))
print(f"median over {rounds} rounds per build; ms, copies = total / memcpy, allocs per frame")
print(f"{'size':6} {'layout':6} {'mode':8} " + " ".join(f"{c:>17}" for c in cols))
for k in keys:
    cells = []
    for c in cols:
        o = statistics.median(data[("old", k, c)])
        n = statistics.median(data[("new", k, c)])
        cells.append(f"{o:7.2f} -> {n:6.2f}")
    print(f"{k[0]:6} {k[1]:6} {k[2]:8} " + " ".join(f"{c:>17}" for c in cells))
PY
