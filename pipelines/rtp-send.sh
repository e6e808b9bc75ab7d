#!/usr/bin/env bash
# Background removed, then streamed live as RTP/H.264 over UDP to this machine (127.0.0.1 only).
# Start pipelines/rtp-receive.sh first, then this; the clip plays at its own speed.
#   pipelines/rtp-send.sh [INPUT]      PORT (default 5000), MODE (default blur)
set -euo pipefail
# shellcheck source=pipelines/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
port=${PORT:-5000}

# tune=zerolatency: no B-frames or lookahead; key-int-max=30 and config-interval=1 let a
# receiver that joins late start within a second.
gst-launch-1.0 \
  filesrc location="$INPUT" ! decodebin ! videoconvert \
  ! unetseg model="$MODEL" mode="${MODE:-blur}" "${UNETSEG_PROPS[@]}" \
  ! videoconvert ! x264enc tune=zerolatency key-int-max=30 \
  ! rtph264pay config-interval=1 pt=96 ! udpsink host=127.0.0.1 port="$port"
