#!/usr/bin/env bash
# A file in, its background blurred, an H.264 mp4 out: the everyday offline use.
#   pipelines/file-blur-mp4.sh [INPUT [OUTPUT]]     (OUTPUT default: out/blur.mp4)
# Environment: see common.sh (MODEL, INPUT, UNETSEG_ARGS="blur-radius=41", ...).
# Progress once a second on stdout (progressreport: seconds done of the whole, and percent).
# Ctrl-C ends the mp4 where it got to, cleanly: gst-launch-1.0 -e turns it into an end of stream,
# so that mp4mux writes its index (the moov atom) and the file plays; a second Ctrl-C aborts.
# I420 before x264enc: H.264 4:2:0 (High profile), which every player decodes (from RGB, x264enc
# would otherwise pick 4:4:4, which browsers and most hardware do not).
set -euo pipefail
# shellcheck source=pipelines/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
output=${2:-$OUT/blur.mp4}
echo "writing $output (Ctrl-C ends it early, as a complete file)" >&2
# exec: the script's process is gst-launch-1.0's, so a SIGINT sent to it (kill -INT, timeout -s INT)
# ends the file as Ctrl-C does.
exec gst-launch-1.0 -e \
  filesrc location="$INPUT" ! decodebin ! videoconvert \
  ! unetseg model="$MODEL" mode=blur "${UNETSEG_PROPS[@]}" ! progressreport update-freq=1 \
  ! videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink location="$output"
