#!/usr/bin/env bash
# Background removed, then streamed live as RTP/H.264 over UDP to this machine (127.0.0.1 only).
# Start pipelines/rtp-receive.sh first, then this; the clip plays at its own speed.
#   pipelines/rtp-send.sh [INPUT]      PORT (default 5000), MODE (default blur),
#                                      CAMERA=/dev/video0 to send a camera instead of a file
set -euo pipefail
# shellcheck source=pipelines/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
port=${PORT:-5000}
if [ -n "${CAMERA:-}" ]; then
  source=(v4l2src device="$CAMERA")  # live: unetseg's live=auto runs the model on its own thread
else
  source=(filesrc location="$INPUT" ! decodebin)
fi

# x264enc: tune=zerolatency (no B-frames, no lookahead: each frame leaves as it is encoded) and
# speed-preset=ultrafast, the preset that keeps real time on 2 cores beside the model: measured
# with tests/pipelines/rtp_realtime.py (a live 640x480 30 fps source of the ASL clips, selfie,
# blur), the default medium preset delivered only a fraction of the frames and veryfast about
# three quarters, ultrafast all (pipelines/README.md has the figures). key-int-max=30 and
# config-interval=1 let a receiver that joins late start within a second. I420: H.264 4:2:0,
# which every receiver decodes (from RGB x264enc would pick 4:4:4).
exec gst-launch-1.0 \
  "${source[@]}" ! videoconvert \
  ! unetseg model="$MODEL" mode="${MODE:-blur}" "${UNETSEG_PROPS[@]}" \
  ! videoconvert ! video/x-raw,format=I420 \
  ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
  ! rtph264pay config-interval=1 pt=96 ! udpsink host=127.0.0.1 port="$port"
