#!/usr/bin/env bash
# Receives what pipelines/rtp-send.sh streams to 127.0.0.1 and shows it, or records it.
#   pipelines/rtp-receive.sh            a window (autovideosink); fakesink when there is no display
#   pipelines/rtp-receive.sh OUT.mp4    record the H.264 as it comes (no re-encoding); stop with
#                                       Ctrl-C (SIGINT): -e ends the file cleanly
#   pipelines/rtp-receive.sh SINK       decode into that sink element (fakesink, ximagesink, ...)
# PORT (default 5000). UDP has no end of stream: the receiver runs until it is stopped; for a
# bounded run, `timeout -s INT 20 pipelines/rtp-receive.sh out/rtp.mp4` still ends the file cleanly.
set -euo pipefail
port=${PORT:-5000}
target=${1:-}
if [ -z "$target" ]; then
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then target=autovideosink; else target=fakesink; fi
fi
# An mp4 keeps the H.264 as it came; anything else is decoded and shown.
case "$target" in
  *.mp4) tail=(mp4mux ! filesink location="$target") ;;
  *) tail=(avdec_h264 ! videoconvert ! "$target") ;;
esac

caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"
echo "listening on 127.0.0.1 udp port $port, output: $target" >&2
exec gst-launch-1.0 -e \
  udpsrc address=127.0.0.1 port="$port" caps="$caps" ! rtpjitterbuffer latency=200 \
  ! rtph264depay ! h264parse ! "${tail[@]}"
