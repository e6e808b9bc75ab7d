#!/usr/bin/env bash
# Green screen without the green: mode=alpha writes the mask into the alpha channel (so the
# frames must be RGBA/BGRA: videoconvert + a capsfilter ask for BGRA), and compositor lays the
# person over a background image, which is repeated for as long as the clip lasts.
#   pipelines/alpha-compositor.sh [INPUT [OUTPUT]]     (OUTPUT default: out/alpha-compositor.mp4)
# BACKGROUND: an image file (default: a videotestsrc pattern written to out/background.png);
# SIZE: output size (default 640x480); for the rest see common.sh.
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

gst-launch-1.0 \
  compositor name=mix sink_0::repeat-after-eos=true \
    ! videoconvert ! x264enc ! mp4mux ! filesink location="$output" \
  filesrc location="$background" ! decodebin ! videoconvert ! videoscale \
    ! "video/x-raw,width=$width,height=$height,pixel-aspect-ratio=1/1" ! mix.sink_0 \
  filesrc location="$INPUT" ! decodebin ! videoconvert ! videoscale \
    ! "video/x-raw,format=BGRA,width=$width,height=$height,pixel-aspect-ratio=1/1" \
    ! unetseg model="$MODEL" mode=alpha "${UNETSEG_PROPS[@]}" ! mix.sink_1
echo "wrote $output"
