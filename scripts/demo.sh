#!/usr/bin/env bash
# Runs unetseg on a real clip, start to finish, on a fresh Debian 12 machine:
# installs the packages (scripts/setup.sh), builds into build/, fetches MediaPipe Selfie (the
# catalog model that serves live background removal on a CPU best: see the README's model
# table) with scripts/fetch-model.sh, then removes the clip's background and writes
#
#   out/demo.mp4       the result, H.264
#   out/demo-mask.mp4  the mask the model saw, white on black
#   out/demo.png       a contact sheet: a few frames, each row input | mask | result
#   out/demo.log       the pipeline's messages
#
# usage: scripts/demo.sh [CLIP] [--mode blur|replace|overlay|mask] [--model NAME] [PROPERTY=VALUE ...]
#   CLIP             a video file (default: ../shared/media/asl/again.mkv beside the repository,
#                    else Megamind.avi from Debian's opencv-doc, installed if needed)
#   --mode           what to do with the background (default blur)
#   --model          a catalog model (scripts/fetch-model.sh --list; default selfie)
#   PROPERTY=VALUE   more unetseg properties, e.g. background-color=0xff2060c0 blur-radius=41
# Running it again rebuilds only what changed and overwrites out/.
set -euo pipefail

prog=$(basename "$0")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage() { sed -n '/^# usage:/,/^# Running/p' "$0" | sed 's/^# \{0,1\}//' >&2; }

clip=""
mode=blur
model_name=selfie
props=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --mode) [ $# -ge 2 ] || die "--mode needs a value"; mode=$2; shift ;;
    --mode=*) mode=${1#--mode=} ;;
    --model) [ $# -ge 2 ] || die "--model needs a value"; model_name=$2; shift ;;
    --model=*) model_name=${1#--model=} ;;
    -*) usage; exit 2 ;;
    *=*) props+=("$1") ;;
    *) [ -z "$clip" ] || die "one clip at a time ('$clip' and '$1')"; clip=$1 ;;
  esac
  shift
done
case "$mode" in
  blur | replace | overlay | mask | none) ;;
  alpha) die "mode alpha only shows through a compositor: see pipelines/alpha-compositor.sh" ;;
  *) die "unknown mode '$mode' (blur, replace, overlay, mask, none)" ;;
esac
[ -z "$clip" ] || [ -f "$clip" ] || die "no such clip: $clip"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

say "1/4 packages"
"$repo/scripts/setup.sh" || die "scripts/setup.sh failed"

say "2/4 build (build/)"
build="$repo/build"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$repo" >/dev/null || die "meson setup failed (see $build/meson-logs/meson-log.txt)"
fi
ninja -C "$build" gst-plugin/libgstunetseg.so tools/unetseg-contact-sheet >/dev/null ||
  die "the build failed: run 'ninja -C $build' to see why"

say "3/4 model"
model=$("$repo/scripts/fetch-model.sh" "$model_name") || die "could not fetch the $model_name model"

if [ -z "$clip" ]; then
  clip="$repo/../shared/media/asl/again.mkv"
  if [ ! -f "$clip" ]; then
    # Close-ups of faces: what a portrait model is for (vtest.avi, a street seen from above,
    # is not, and is three times longer).
    clip=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
    if [ ! -f "$clip" ]; then
      say "no ../shared/media: installing Debian's opencv-doc for its sample clip"
      export DEBIAN_FRONTEND=noninteractive
      as_root apt-get update -qq || die "apt-get update failed"
      as_root apt-get install -y -qq --no-install-recommends opencv-doc >/dev/null ||
        die "could not install opencv-doc"
      [ -f "$clip" ] || die "opencv-doc has no $clip"
    fi
  fi
fi
clip=$(cd "$(dirname "$clip")" && pwd -P)/$(basename "$clip")

out="$repo/out"
mkdir -p "$out"
say "4/4 unetseg mode=$mode on $clip"
# One decode feeds two unetseg instances with the same settings: the result, and the mask
# (mode=mask) for the sheet. I420 before x264enc: from RGB it would pick 4:4:4 (High 4:4:4),
# which browsers and most players cannot play.
# Per-frame messages from the first one give the frame count and the model's time.
export GST_PLUGIN_PATH="$build/gst-plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
start=$(date +%s%N)
if ! gst-launch-1.0 -m \
  filesrc location="$clip" ! decodebin ! videoconvert ! tee name=t \
  t. ! queue ! unetseg name=result model="$model" mode="$mode" post-messages=true "${props[@]}" \
     ! videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux \
     ! filesink location="$out/demo.mp4" \
  t. ! queue ! unetseg model="$model" "${props[@]}" mode=mask \
     ! videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux \
     ! filesink location="$out/demo-mask.mp4" \
  >"$out/demo.log" 2>&1; then
  tail -n 5 "$out/demo.log" >&2
  die "the pipeline failed (whole log: $out/demo.log)"
fi
end=$(date +%s%N)

"$build/tools/unetseg-contact-sheet" "$out/demo.png" "$clip" "$out/demo-mask.mp4" "$out/demo.mp4" \
  --frames 5 --labels "input,mask,$mode" >/dev/null || die "could not make the contact sheet"

awk -v ns=$((end - start)) -v mode="$mode" '
  /from element "result".*: unetseg,/ {
    n++
    if (match($0, /inference-time=\(guint64\)[0-9]+/)) infer += substr($0, RSTART + 24, RLENGTH - 24)
  }
  END {
    s = ns / 1e9
    if (n == 0) { print "no frames were processed"; exit 1 }
    printf "%d frames in %.1f s (%.1f fps), mode=%s, model %.0f ms a frame\n", n, s, n / s, mode, infer / n / 1e6
  }' "$out/demo.log" || die "the pipeline processed no frames (see $out/demo.log)"
printf 'result:  %s\nmask:    %s\nsheet:   %s\n' "$out/demo.mp4" "$out/demo-mask.mp4" "$out/demo.png"
