#!/usr/bin/env bash
# N cameras in one process, each through its own unetseg (background blurred), out as one tiled
# mosaic, N files or N network streams. The unetseg elements name the same model, so an element
# that shares models (share-model, on by default where the element has it) loads the network once
# and runs one inference thread for all of them (docs/SCALING.md).
#   pipelines/multi-camera.sh [OPTIONS]
# Sources (default: COUNT cameras playing the clips of ../shared/media/asl, looped):
#   -n, --count N         how many cameras (default 4); with --camera/--rtsp, the number given
#   --size WxH            every camera's picture (default 1920x1080); --fps F (default 30)
#   --camera DEV          a V4L2 camera, e.g. /dev/video0 (repeat for more; CAMERAS="DEV ...")
#   --rtsp URL            an RTSP camera, rtsp://... (repeat; RTSP_URLS="URL ..."); TCP, 200 ms of
#                         jitter buffer (RTSP_LATENCY)
#   --test-pattern        videotestsrc is-live=true instead of the clips (no ../shared needed;
#                         TEST_PATTERN=1)
#   --duration S          end after S seconds of frames per camera (default: run until Ctrl-C)
# Outputs (one of them; default: a window, or out/multi-camera.mp4 when there is no display):
#   --output FILE.mp4|SINK  the mosaic (a grid of ceil(sqrt(N)) columns, 2x2 for 4, scaled into
#                         one picture of --size, each camera's shape kept) to an H.264 mp4, or
#                         into that sink element (fakesink, ximagesink, ...)
#   --out-dir DIR         one H.264 mp4 per camera: DIR/cam0.mp4, DIR/cam1.mp4, ...
#   --rtp HOST:PORT       RTP/H.264 over UDP per camera, camera i to PORT+2i (rtp-receive.sh
#                         with PORT= receives one)
#   --srt URI             MPEG-TS/H.264 over SRT per camera (srtsink, gstreamer1.0-plugins-bad):
#                         a %d in URI becomes the camera's number (srt://server:8890?streamid=
#                         publish:cam%d); without one, camera i goes to URI's port + i
#                         (srt://:7001?mode=listener: listens on 7001, 7002, ... for viewers
#                         and never waits for one; a caller, the default mode, connects first)
# The shared-model properties of unetseg, where this build's element has them (else: an error
# naming the property; docs/SCALING.md): --batch-size N, --batch-timeout MS,
# --model-instance-id ID, --private-model (share-model=false).
# Environment: COUNT, SIZE, FPS, DURATION, CAMERAS, RTSP_URLS, RTSP_LATENCY, TEST_PATTERN, OUTPUT,
# OUT_DIR, RTP, SRT, MODE (default blur), CLIPS (video files to loop instead of ../shared/media/asl/*.mkv)
# and common.sh's MODEL, UNETSEG_ARGS, UNETSEG_BUILD, OUT; a flag wins over its variable.
# The clips are decoded once into JPEG frames under OUT/frames/ and played at FPS, looped, paced
# by the clock (clocksync) with unetseg live=on: like a camera, a frame never waits for the model.
# Each camera is followed by a leaky queue of 2 frames, so a camera whose frames the pipeline is
# not ready for loses them, as a real one does. Encoders: x264enc tune=zerolatency
# speed-preset=ultrafast, I420, a key frame a second (rtp-send.sh says why). Progress once a
# second on stdout (progressreport, per camera, or of the mosaic); Ctrl-C (SIGINT) ends the files
# cleanly (gst-launch-1.0 -e), a second Ctrl-C aborts.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
fail() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 2; }
need() { [ "$2" -ge 2 ] || fail "$1 needs a value (--help lists the options)"; }

count=${COUNT:-} size=${SIZE:-1920x1080} fps=${FPS:-30} duration=${DURATION:-}
output=${OUTPUT:-} out_dir=${OUT_DIR:-} rtp=${RTP:-} srt=${SRT:-} pattern=${TEST_PATTERN:-0}
sources=()
for dev in ${CAMERAS:-}; do sources+=("v4l2 $dev"); done
for url in ${RTSP_URLS:-}; do sources+=("rtsp $url"); done
shared_props=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--count) need "$1" $#; count=$2; shift 2 ;;
    --size) need "$1" $#; size=$2; shift 2 ;;
    --fps) need "$1" $#; fps=$2; shift 2 ;;
    --duration) need "$1" $#; duration=$2; shift 2 ;;
    --camera) need "$1" $#; sources+=("v4l2 $2"); shift 2 ;;
    --rtsp) need "$1" $#; sources+=("rtsp $2"); shift 2 ;;
    --test-pattern) pattern=1; shift ;;
    --output) need "$1" $#; output=$2; shift 2 ;;
    --out-dir) need "$1" $#; out_dir=$2; shift 2 ;;
    --rtp) need "$1" $#; rtp=$2; shift 2 ;;
    --srt) need "$1" $#; srt=$2; shift 2 ;;
    --batch-size) need "$1" $#; shared_props+=("batch-size=$2"); shift 2 ;;
    --batch-timeout) need "$1" $#; shared_props+=("batch-timeout=$2"); shift 2 ;;
    --model-instance-id) need "$1" $#; shared_props+=("model-instance-id=$2"); shift 2 ;;
    --private-model) shared_props+=("share-model=false"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown option '$1' (--help lists them)" ;;
  esac
done

[[ "$size" =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || fail "--size must be WIDTHxHEIGHT, not '$size'"
width=${BASH_REMATCH[1]} height=${BASH_REMATCH[2]}
[[ "$fps" =~ ^[1-9][0-9]*$ ]] || fail "--fps must be a whole number of frames per second, not '$fps'"
if [ -n "$duration" ]; then
  [[ "$duration" =~ ^[1-9][0-9]*$ ]] || fail "--duration must be whole seconds, not '$duration'"
fi
[[ "$pattern" =~ ^[01]$ ]] || fail "TEST_PATTERN must be 0 or 1, not '$pattern'"
if [ ${#sources[@]} -gt 0 ]; then
  [ "$pattern" = 0 ] || fail "--test-pattern and --camera/--rtsp exclude each other"
  [ -z "$count" ] || [ "$count" = ${#sources[@]} ] ||
    fail "--count $count, but ${#sources[@]} cameras given (--camera/--rtsp, CAMERAS, RTSP_URLS)"
  count=${#sources[@]}
fi
count=${count:-4}
if ! [[ "$count" =~ ^[1-9][0-9]*$ ]] || [ "$count" -gt 64 ]; then
  fail "--count must be 1 to 64, not '$count'"
fi
for prop in "${shared_props[@]}"; do  # the element's ranges: gst-launch would only warn
  case "$prop" in
    batch-size=*) [[ "${prop#*=}" =~ ^[1-9][0-9]*$ ]] && [ "${prop#*=}" -le 256 ] ||
      fail "--batch-size must be 1 to 256, not '${prop#*=}'" ;;
    batch-timeout=*) [[ "${prop#*=}" =~ ^[0-9]+$ ]] && [ "${prop#*=}" -le 10000 ] ||
      fail "--batch-timeout must be 0 to 10000 milliseconds, not '${prop#*=}'" ;;
  esac
done
outputs=0
for o in "$output" "$out_dir" "$rtp" "$srt"; do [ -z "$o" ] || outputs=$((outputs + 1)); done
[ "$outputs" -le 1 ] || fail "--output, --out-dir, --rtp and --srt exclude each other: pick one"
if [ -n "$rtp" ]; then
  [[ "$rtp" =~ ^(.+):([0-9]+)$ ]] || fail "--rtp must be HOST:PORT, not '$rtp'"
  rtp_host=${BASH_REMATCH[1]} rtp_port=${BASH_REMATCH[2]}
fi
if [ -n "$srt" ] && [[ "$srt" != *%d* ]]; then
  [[ "$srt" =~ ^(srt://[^/?]*):([0-9]+)(.*)$ ]] ||
    fail "--srt must be srt://HOST:PORT[?...] or hold a %d, not '$srt'"
  srt_base=${BASH_REMATCH[1]} srt_port=${BASH_REMATCH[2]} srt_rest=${BASH_REMATCH[3]}
fi
for s in "${sources[@]}"; do
  if [ "${s%% *}" = v4l2 ]; then
    [ -c "${s#* }" ] || fail "camera ${s#* }: no such video device"
  elif [[ "${s#* }" != rtsp://* && "${s#* }" != rtsps://* ]]; then
    fail "--rtsp wants an rtsp:// or rtsps:// URL, not '${s#* }'"
  fi
done

set --  # common.sh: the plugin, MODEL, UNETSEG_PROPS, OUT; no single INPUT here
no_input=1
# shellcheck source=pipelines/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Read whole first: grep -q would close the pipe early, and pipefail would take gst-inspect's
# SIGPIPE for a missing property.
element_help=$(gst-inspect-1.0 unetseg)
for prop in "${shared_props[@]}"; do
  grep -q "^  ${prop%%=*} " <<<"$element_help" ||
    die "this build's unetseg ($build/gst-plugin) has no ${prop%%=*} property: it needs an" \
      "element with shared models (docs/SCALING.md); leave --${prop%%=*} out, or rebuild"
done

# The looped clips: each decoded once into JPEG frames (OUT/frames/NAME-CKSUM/), which
# multifilesrc plays in a loop with timestamps running on.
clip_dirs=() clip_names=()
if [ ${#sources[@]} -eq 0 ] && [ "$pattern" = 0 ]; then
  if [ -n "${CLIPS:-}" ]; then
    read -ra clips <<<"$CLIPS"
  else
    clips=("$repo"/../shared/media/asl/*.mkv)
    [ -f "${clips[0]}" ] || die "no clips in $repo/../shared/media/asl: pass --test-pattern," \
      "--camera or --rtsp, or name video files in CLIPS"
  fi
  for clip in "${clips[@]}"; do
    [ -f "$clip" ] || die "clip $clip: no such file"
    name=$(basename "${clip%.*}")
    dir=$OUT/frames/$name-$(printf %s "$(realpath "$clip")" | cksum | cut -d' ' -f1)
    if [ ! -f "$dir/complete" ]; then
      rm -rf "$dir" && mkdir -p "$dir"
      gst-launch-1.0 -q filesrc location="$clip" ! decodebin ! videoconvert \
        ! jpegenc quality=90 ! multifilesink location="$dir/%05d.jpg" >/dev/null ||
        die "clip $clip: could not decode it into $dir"
      [ -f "$dir/00000.jpg" ] || die "clip $clip: no video frames in it"
      touch "$dir/complete"
    fi
    clip_dirs+=("$dir") clip_names+=("$name")
  done
fi

caps="video/x-raw,width=$width,height=$height,framerate=$fps/1,pixel-aspect-ratio=1/1"
encoder=(videoconvert ! "video/x-raw,format=I420"
  ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max="$fps")
cols=1
while [ $((cols * cols)) -lt "$count" ]; do cols=$((cols + 1)); done
rows=$(((count + cols - 1) / cols))

mosaic=0
if [ -z "$out_dir$rtp$srt" ]; then
  mosaic=1
  if [ -z "$output" ]; then
    if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then output=autovideosink; else output=$OUT/multi-camera.mp4; fi
  fi
fi
[ -z "$out_dir" ] || mkdir -p "$out_dir"

pipeline=()
described=()
if [ "$mosaic" = 1 ]; then
  tile_w=$((width / cols)) tile_h=$((height / rows))
  mix=(compositor name=mix background=black)
  for ((i = 0; i < count; i++)); do
    mix+=("sink_$i::xpos=$(((i % cols) * tile_w))" "sink_$i::ypos=$(((i / cols) * tile_h))"
      "sink_$i::width=$tile_w" "sink_$i::height=$tile_h" "sink_$i::sizing-policy=keep-aspect-ratio")
  done
  case "$output" in
    *.mp4) tail=("${encoder[@]}" ! mp4mux ! filesink location="$output") ;;
    *) tail=(videoconvert ! "$output") ;;
  esac
  pipeline+=("${mix[@]}" ! "$caps" ! progressreport name=mosaic update-freq=1 ! "${tail[@]}")
fi

for ((i = 0; i < count; i++)); do
  live=()
  if [ ${#sources[@]} -gt 0 ]; then
    kind=${sources[$i]%% *} where=${sources[$i]#* }
    if [ "$kind" = v4l2 ]; then
      src=(v4l2src device="$where" ! decodebin)
    else
      src=(rtspsrc location="$where" protocols=tcp latency="${RTSP_LATENCY:-200}" ! decodebin)
    fi
    src+=(! videoconvert ! videoscale ! videorate ! "$caps")
    described+=("$(sed -E 's#^([a-z]+://)[^/@]*@#\1***@#' <<<"$where")")  # no passwords in logs
  elif [ "$pattern" = 1 ]; then
    src=(videotestsrc is-live=true pattern=ball ! "$caps")
    described+=("test pattern")
  else
    c=$((i % ${#clip_dirs[@]}))
    src=(multifilesrc location="${clip_dirs[$c]}/%05d.jpg" loop=true
      caps="image/jpeg,framerate=$fps/1" ! jpegdec ! videoconvert ! videoscale ! "$caps"
      ! clocksync)
    live=(live=on)  # a file is not live: live=on keeps it from waiting for the model
    described+=("${clip_names[$c]}")
  fi
  [ -z "$duration" ] || src+=(! identity eos-after=$((duration * fps)))
  branch=("${src[@]}" ! queue leaky=downstream max-size-buffers=2 max-size-bytes=0 max-size-time=0
    ! unetseg model="$MODEL" mode="${MODE:-blur}" "${live[@]}" "${UNETSEG_PROPS[@]}"
    "${shared_props[@]}")
  if [ "$mosaic" = 1 ]; then
    branch+=(! queue ! "mix.sink_$i")
  else
    branch+=(! progressreport name="cam$i" update-freq=1 ! queue ! "${encoder[@]}")
    if [ -n "$out_dir" ]; then
      branch+=(! mp4mux ! filesink location="$out_dir/cam$i.mp4")
    elif [ -n "$rtp" ]; then
      branch+=(! rtph264pay config-interval=1 pt=96
        ! udpsink host="$rtp_host" port=$((rtp_port + 2 * i)))
    else
      if [[ "$srt" == *%d* ]]; then uri=${srt//%d/$i}; else uri=$srt_base:$((srt_port + i))$srt_rest; fi
      # A listener serves whoever connects, and the cameras must not wait for a first viewer; a
      # caller waits for its connection, so the stream starts whole (or fails, when nobody
      # listens, with srtsink's reason).
      wait=true
      [[ "$uri" != *mode=listener* && "$uri" != srt://:* ]] || wait=false
      branch+=(! h264parse config-interval=-1 ! mpegtsmux alignment=7
        ! srtsink uri="$uri" "wait-for-connection=$wait")
    fi
  fi
  pipeline+=("${branch[@]}")
done

if [ "$mosaic" = 1 ]; then to="a ${cols}x${rows} mosaic -> $output"
elif [ -n "$out_dir" ]; then to="$out_dir/cam0..$((count - 1)).mp4"
elif [ -n "$rtp" ]; then to="RTP to $rtp_host ports $rtp_port..$((rtp_port + 2 * (count - 1)))"
else to="SRT $srt"; fi
printf '%s: %d cameras (%s), %dx%d at %d fps, %s, mode %s -> %s%s\n' "$(basename "$0")" \
  "$count" "$(IFS=,; echo "${described[*]}")" "$width" "$height" "$fps" "$(basename "$MODEL")" \
  "${MODE:-blur}" "$to" "${duration:+, $duration s}" >&2
# exec: the script's process is gst-launch-1.0's, so a SIGINT sent to it (kill -INT, timeout -s INT,
# systemctl stop with KillSignal=SIGINT) ends the files as Ctrl-C does.
exec gst-launch-1.0 -e "${pipeline[@]}"
