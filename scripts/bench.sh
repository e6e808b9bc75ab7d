#!/usr/bin/env bash
# Measures unetseg's speed on this machine with tools/unetseg-bench (docs/BENCHMARKS.md explains
# every figure): installs and builds like scripts/test.sh, fetches the models, then for each
# model writes out/bench/NAME.txt (the tables) and out/bench/NAME.json (every figure).
#
# usage: scripts/bench.sh [--models NAME,NAME] [--opencv system|4.10] [UNETSEG-BENCH OPTIONS ...]
#   --models   catalog models (default portrait-unet); each gets its own run
#   --opencv   the OpenCV to build against (scripts/build.sh): system (default, build/) or 4.10
#              (build-opencv4.10/; files then named NAME-opencv4.10.*)
#   options    passed on, e.g. --sizes 1080p --frames 50 --sections library,element,peer,memory
#              (build/tools/unetseg-bench --help lists them)
set -euo pipefail

prog=$(basename "$0")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { say "error: $*"; exit 1; }

models=portrait-unet
opencv=system
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) sed -n '/^# usage:/,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    --models) [ $# -ge 2 ] || die "--models needs a value"; models=$2; shift ;;
    --models=*) models=${1#--models=} ;;
    --opencv) [ $# -ge 2 ] || die "--opencv needs system or 4.10"; opencv=$2; shift ;;
    --opencv=*) opencv=${1#--opencv=} ;;
    *) args+=("$1") ;;
  esac
  shift
done

"$repo/scripts/setup.sh" || die "scripts/setup.sh failed"
dir=$("$repo/scripts/build.sh" "$opencv" gst-plugin/libgstunetseg.so tools/unetseg-bench |
      tail -n 1) || die "the build failed: run 'scripts/build.sh $opencv' to see why"
build="$repo/$dir"
suffix=""
[ "$opencv" = system ] || suffix="-opencv$opencv"

out="$repo/out/bench"
mkdir -p "$out"
IFS=, read -r -a names <<<"$models"
for name in "${names[@]}"; do
  "$repo/scripts/fetch-model.sh" "$name" >/dev/null || die "could not fetch the $name model"
  say "$name: $build/tools/unetseg-bench --model $name ${args[*]:-}"
  GST_PLUGIN_PATH_1_0="$build/gst-plugin" "$build/tools/unetseg-bench" --model "$name" \
    --json "$out/$name$suffix.json" "${args[@]}" | tee "$out/$name$suffix.txt"
done
say "wrote $out"
