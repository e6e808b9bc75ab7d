#!/usr/bin/env bash
# Times each model with unetseg built against Debian's OpenCV 4.6 (build/) and against OpenCV
# 4.10 (build-opencv4.10/, scripts/build-opencv.sh), side by side in one run: the two builds
# take turns, round after round, so that a noisy neighbour slows both alike. Prints, per model,
# the median of the per-round medians of the bare net.forward and of the whole run (preprocess +
# forward + postprocess) through unetseg-bench's library section, and the ratio 4.6 / 4.10.
#
# usage: scripts/compare-opencv.sh [--models NAME,NAME] [--rounds N] [--frames N] [--size S]
#   --models   catalog models (default sinet,portrait-unet,isnet-320,isnet-512,isnet-1024)
#   --rounds   turns of each build per model (default 3)
#   --frames   timed frames per turn (default 10; a turn also runs 3 untimed warm-up frames)
#   --size     frame size (default 1080p)
# Writes out/compare-opencv/MODEL-BUILD-ROUND.json (unetseg-bench's JSON) and summary.txt.
set -euo pipefail

prog=$(basename "$0")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { say "error: $*"; exit 1; }

models=sinet,portrait-unet,isnet-320,isnet-512,isnet-1024
rounds=3 frames=10 size=1080p
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) sed -n '/^# usage:/,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    --models) [ $# -ge 2 ] || die "--models needs a value"; models=$2; shift ;;
    --rounds) [ $# -ge 2 ] || die "--rounds needs a number"; rounds=$2; shift ;;
    --frames) [ $# -ge 2 ] || die "--frames needs a number"; frames=$2; shift ;;
    --size) [ $# -ge 2 ] || die "--size needs a value"; size=$2; shift ;;
    *) die "unknown argument: $1 (--help lists them)" ;;
  esac
  shift
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive number, got '$rounds'"
[[ "$frames" =~ ^[1-9][0-9]*$ ]] || die "--frames wants a positive number, got '$frames'"

"$repo/scripts/setup.sh" || die "scripts/setup.sh failed"
declare -A dirs
for opencv in system 4.10; do
  dirs[$opencv]=$repo/$("$repo/scripts/build.sh" "$opencv" tools/unetseg-bench | tail -n 1) ||
    die "the $opencv build failed: run 'scripts/build.sh $opencv' to see why"
done

out="$repo/out/compare-opencv"
mkdir -p "$out"
IFS=, read -r -a names <<<"$models"
for name in "${names[@]}"; do
  "$repo/scripts/fetch-model.sh" "$name" >/dev/null || die "could not fetch the $name model"
  for round in $(seq 1 "$rounds"); do
    for opencv in system 4.10; do
      say "$name, round $round/$rounds, OpenCV $opencv"
      "${dirs[$opencv]}/tools/unetseg-bench" --model "$name" --sections library --sizes "$size" \
        --modes none --frames "$frames" --json "$out/$name-$opencv-$round.json" >/dev/null ||
        die "unetseg-bench failed for $name with OpenCV $opencv"
    done
  done
done

/usr/bin/python3 - "$out" "$rounds" "$models" <<'PY' | tee "$out/summary.txt"
import json, statistics, sys
out, rounds, models = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
first = json.load(open(f"{out}/{models[0]}-system-1.json"))
print(f"{first['machine']['cpu']}, {first['machine']['cores']} cores, "
      f"{first['machine']['opencv_threads']} OpenCV threads; "
      f"{first['library'][0]['size']} frames; median of {rounds} alternating rounds")
print(f"{'model':<14}{'forward 4.6':>13}{'forward 4.10':>14}{'ratio':>8}"
      f"{'run 4.6':>11}{'run 4.10':>11}{'ratio':>8}")
for m in models:
    figure = {}
    for cv in ("system", "4.10"):
        runs = [json.load(open(f"{out}/{m}-{cv}-{r}.json")) for r in range(1, rounds + 1)]
        versions = {run["machine"]["opencv"] for run in runs}
        assert len(versions) == 1, versions
        figure[cv] = {k: statistics.median(run["library"][0][k]["median"] for run in runs)
                      for k in ("bare_forward", "run")}
    s, n = figure["system"], figure["4.10"]
    print(f"{m:<14}{s['bare_forward']:>10.1f} ms{n['bare_forward']:>11.1f} ms"
          f"{s['bare_forward'] / n['bare_forward']:>7.2f}x"
          f"{s['run']:>8.1f} ms{n['run']:>8.1f} ms{s['run'] / n['run']:>7.2f}x")
PY
say "wrote $out"
