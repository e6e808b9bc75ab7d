# Sourced by the pipelines in this folder; not run on its own. Finds the plugin in the build
# folder, the model and the input clip, each overridable from the environment:
#   UNETSEG_BUILD  build folder (default: build/ at the repository's root)
#   MODEL          .onnx with its .json sidecar beside it (default: the catalog's selfie, fetched
#                  once and cached)
#   INPUT          video file; the first argument wins over it (default: ../shared/media/asl/
#                  again.mkv beside the repository, else Debian's opencv-doc Megamind.avi);
#                  not looked for when the script sets no_input=1 before sourcing this (its
#                  sources are cameras or several clips: multi-camera.sh)
#   UNETSEG_ARGS   more unetseg properties, e.g. UNETSEG_ARGS="blur-radius=41 soft-mask=true"
# and sets OUT (default out/ at the repository's root) for what the pipelines write.
# shellcheck shell=bash disable=SC2034

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
build=${UNETSEG_BUILD:-$repo/build}
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

[ -f "$build/gst-plugin/libgstunetseg.so" ] ||
  die "no plugin in $build: build it first (scripts/demo.sh, or meson setup build && ninja -C build)"
export GST_PLUGIN_PATH="$build/gst-plugin${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"

MODEL=${MODEL:-$("$repo/scripts/fetch-model.sh" selfie)} || die "could not fetch the selfie model"

if [ "${no_input:-0}" != 1 ]; then
  INPUT=${1:-${INPUT:-}}
  if [ -z "$INPUT" ]; then
    for clip in "$repo/../shared/media/asl/again.mkv" /usr/share/doc/opencv-doc/examples/data/Megamind.avi; do
      if [ -z "$INPUT" ] && [ -f "$clip" ]; then INPUT=$clip; fi
    done
  fi
  [ -n "$INPUT" ] || die "no input clip: pass one, or install opencv-doc (apt-get install opencv-doc)"
  [ -f "$INPUT" ] || die "no such file: $INPUT"
fi

read -ra UNETSEG_PROPS <<<"${UNETSEG_ARGS:-}"
OUT=${OUT:-$repo/out}
mkdir -p "$OUT"
