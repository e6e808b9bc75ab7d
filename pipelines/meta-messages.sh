#!/usr/bin/env bash
# Analysis only: mode=none leaves the pixels alone (passthrough) and post-messages=true posts an
# element message "unetseg" per frame on the bus, which gst-launch-1.0 -m prints:
#   foreground-fraction, bbox-x/-y/-width/-height (frame pixels), inference-time (ns), model,
#   timestamp, stream-time, running-time, duration.
# The mask itself travels as metadata on each buffer: see examples/read_mask.c and .py.
#   pipelines/meta-messages.sh [INPUT]     (add | grep ': unetseg,' to see only those messages)
set -euo pipefail
# shellcheck source=pipelines/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

gst-launch-1.0 -m \
  filesrc location="$INPUT" ! decodebin ! videoconvert \
  ! unetseg model="$MODEL" mode=none post-messages=true "${UNETSEG_PROPS[@]}" \
  ! fakesink
