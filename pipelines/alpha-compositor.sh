#!/usr/bin/env bash
# Green screen without the green: mode=alpha writes the mask into the alpha channel (so the
# frames must be RGBA/BGRA: videoconvert + a capsfilter ask for BGRA), and compositor lays the
# person over a background image, which is repeated for as long as the clip lasts.
#   pipelines/alpha-compositor.sh [INPUT [OUTPUT]]     (OUTPUT default: out/alpha-compositor.mp4)
# BACKGROUND: an image file (default: a videotestsrc pattern written to out/background.png);
# SIZE: output size (default 640x480); for the rest see common.sh.
# Progress once a second on stdout (progressreport); Ctrl-C ends the mp4 cleanly where it got to
# (gst-launch-1.0 -e: end of stream, mp4mux writes its moov atom); a second Ctrl-C aborts.
set -euo pipefail
# shellcheck source=pipelines/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
output=${2:-$OUT/alpha-compositor.mp4}
size=${SIZE:-640x480}
width=${size%x*} height=${size#*x}
background=${BACKGROUND:-$OUT/background.png}
if [ -z "${BACKGROUND:-}" ]; then
  gst-launch-1.0 -q videotestsrc num-buffers=1 pattern=colors \
    ! "video/x-raw,width=$width,height=$height" ! videoconvert ! pngenc \
    ! filesink location="$background"
fi
echo "writing $output (Ctrl-C ends it early, as a complete file)" >&2
# exec: the script's process is gst-launch-1.0's, so a SIGINT sent to it (kill -INT, timeout -s INT)
# ends the file as Ctrl-C does.
exec gst-launch-1.0 -e \
  compositor name=mix sink_0::repeat-after-eos=true \
    ! videoconvert ! video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink location="$output" \
  filesrc location="$background" ! decodebin ! videoconvert ! videoscale \
    ! "video/x-raw,width=$width,height=$height,pixel-aspect-ratio=1/1" ! mix.sink_0 \
  filesrc location="$INPUT" ! decodebin ! videoconvert ! videoscale \
    ! "video/x-raw,format=BGRA,width=$width,height=$height,pixel-aspect-ratio=1/1" \
    ! unetseg model="$MODEL" mode=alpha "${UNETSEG_PROPS[@]}" ! progressreport update-freq=1 \
    ! mix.sink_1
