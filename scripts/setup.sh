#!/usr/bin/env bash
# Installs what unetseg needs to build, test and run its demo on Debian 12, idempotently:
# packages already present are not touched, so a second run costs one dpkg query.
set -euo pipefail

packages=(
  # build
  g++ meson ninja-build pkgconf
  # libunetseg
  libopencv-dev
  # the element and its tests
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav
  libgtest-dev
  # test-model generation (ONNX graphs built with onnx.helper), and reading the meta from Python
  python3 python3-numpy python3-onnx python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  # model preparation and its check (models/prepare.py, models/fetch.py): OpenCV from Python
  python3-opencv
  # U-Net/U2-Net definitions, exporter and the official U2-Net reference pipeline (models/*.py)
  python3-torch python3-skimage python3-pil
  # the mask meta's typelib (GstUnetseg-1.0) for Python; optional in meson
  gobject-introspection libgirepository1.0-dev
  # the RTSP server example (examples/rtsp_server.py), and ffprobe/ffmpeg, which the tests of
  # unetseg-remove, pipelines/ and the RTSP server read every output back with
  gir1.2-gst-rtsp-server-1.0 ffmpeg
  # the fuzz targets (tests/fuzz/run.sh, scripts/test-hardening.sh): clang with libFuzzer and the
  # ASan/UBSan runtimes (libclang-rt), llvm-symbolizer (llvm-14) for readable stacks. The gcc
  # ASan/UBSan build of the tests needs nothing more than g++ (libasan8, libubsan1).
  clang-14 libclang-rt-14-dev llvm-14
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
