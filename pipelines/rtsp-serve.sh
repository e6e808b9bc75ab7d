#!/usr/bin/env bash
# An RTSP server (gst-rtsp-server, examples/rtsp_server.py) streaming the clip, looped, or a
# camera, with its background blurred: every client on rtsp://127.0.0.1:8554/unetseg sees the same
# stream, H.264 at the source's rate.
#   pipelines/rtsp-serve.sh [INPUT]     CAMERA=/dev/video0 to serve a camera instead,
#                                       PORT (default 8554), MODE (default blur),
#                                       ADDRESS (default 127.0.0.1; 0.0.0.0 to serve the network)
#   gst-launch-1.0 rtspsrc location=rtsp://127.0.0.1:8554/unetseg ! decodebin ! autovideosink
#   ffplay -rtsp_transport tcp rtsp://127.0.0.1:8554/unetseg
# A file is served with live=on (a camera with live=auto, which is on): frames never wait for the
# model, so the stream holds the source's rate whatever the model costs (examples/rtsp_server.py
# says why; UNETSEG_ARGS=live=off makes every frame wait for its own mask). Ctrl-C stops it.
set -euo pipefail
# shellcheck source=pipelines/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if [ -n "${CAMERA:-}" ]; then source=(--camera "$CAMERA"); else source=("$INPUT"); fi
exec /usr/bin/python3 "$repo/examples/rtsp_server.py" --model "$MODEL" --mode "${MODE:-blur}" \
  --port "${PORT:-8554}" --address "${ADDRESS:-127.0.0.1}" "${UNETSEG_PROPS[@]}" "${source[@]}"
