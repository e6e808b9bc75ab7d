#!/usr/bin/env bash
# A file in, its background blurred, an H.264 mp4 out: the everyday offline use.
#   pipelines/file-blur-mp4.sh [INPUT [OUTPUT]]     (OUTPUT default: out/blur.mp4)
# Environment: see common.sh (MODEL, INPUT, UNETSEG_ARGS="blur-radius=41", ...).
set -euo pipefail
# shellcheck source=pipelines/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
output=${2:-$OUT/blur.mp4}

gst-launch-1.0 \
  filesrc location="$INPUT" ! decodebin ! videoconvert \
  ! unetseg model="$MODEL" mode=blur "${UNETSEG_PROPS[@]}" \
  ! videoconvert ! x264enc ! mp4mux ! filesink location="$output"
echo "wrote $output"
