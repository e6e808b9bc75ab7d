#!/usr/bin/env bash
# Configures and builds unetseg against one OpenCV; the last line on stdout is the build
# directory. Installs nothing: scripts/setup.sh does (test.sh and bench scripts run it first).
#
#   system   build/              Debian's OpenCV 4.6 (the zero-setup default)
#   4.10     build-opencv4.10/   OpenCV 4.10 from scripts/build-opencv.sh (built into the cache
#                                the first time: about 10 minutes on 2 cores; CUDA DNN backend
#                                when the CUDA toolkit is there)
#
# usage: scripts/build.sh [system|4.10] [NINJA TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."

flavour=${1:-system}
[ $# -eq 0 ] || shift
case "$flavour" in
  system) dir=build pkg_config_path="" ;;
  4.10)
    dir=build-opencv4.10
    prefix=$(scripts/build-opencv.sh | tail -n 1)
    pkg_config_path=$prefix/lib/pkgconfig
    ;;
  *) echo "build.sh: the OpenCV must be system or 4.10, not '$flavour'" >&2; exit 2 ;;
esac

if [ -f "$dir/build.ninja" ]; then
  meson setup --reconfigure "$dir" -Dpkg_config_path="$pkg_config_path" >/dev/null
else
  meson setup "$dir" -Dpkg_config_path="$pkg_config_path" >/dev/null
fi
ninja -C "$dir" "$@" | tail -n 1 >&2
echo "$dir"
