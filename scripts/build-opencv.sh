#!/usr/bin/env bash
# Builds OpenCV 4.10 with only core, imgproc and dnn (plus cudev and dnn's CUDA
# backend when a CUDA toolkit with cuDNN 9 is found) into a private prefix:
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/opencv-4.10/cuda   CUDA flavour
#   ${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/opencv-4.10/cpu    CPU-only flavour
#
# The last line on stdout is the prefix, so other scripts can do
#   prefix=$(scripts/build-opencv.sh | tail -n1)
#   PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs opencv4
# The libraries carry RUNPATH=$prefix/lib (and the CUDA library dir for the CUDA
# flavour); programs linked against them need their own rpath to $prefix/lib
# (or LD_LIBRARY_PATH=$prefix/lib).
#
# Usage: scripts/build-opencv.sh [--cpu] [--jobs N]
#   --cpu      build the CPU-only flavour even when CUDA is usable
#   --jobs N   parallel compile jobs (default: nproc)
# Environment: CUDA_HOME (default /usr/local/cuda), OPENCV_CUDA_ARCH (default
# 9.0, i.e. H100/H200; SASS for these and PTX for the highest, so newer GPUs JIT).
#
# Idempotent: a complete prefix holds a stamp (written last) naming the source
# checksums, the flavour, the toolkit versions and the checksum of
# scripts/opencv/ and of the cmake flags; when it matches, nothing is done.
set -euo pipefail

log() { echo "build-opencv: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; }

force_cpu=0
jobs=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) force_cpu=1 ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a number"; jobs=$2; shift ;;
    --jobs=*) jobs=${1#--jobs=} ;;
    -h|--help) usage; exit 0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs wants a positive number, got '$jobs'"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
assets=$here/opencv
cache=${XDG_CACHE_HOME:-$HOME/.cache}/unetseg
downloads=$cache/downloads
root=$cache/opencv-4.10

# Debian's repacked upstream tarballs (identical for every 4.10.0+dfsg-N
# revision). Pinned, so the patch below always meets the source it was made
# for; the Sources index is only used to find them and must agree.
main_tarball=opencv_4.10.0+dfsg.orig.tar.xz
main_sha256=4ca619efbad524c550771ab110332fc81293fb720bd03980fe58bc15f9ca3be8
# Only its modules/cudev is used: OpenCV's CUDA support will not build without it.
contrib_tarball=opencv_4.10.0+dfsg.orig-contrib.tar.xz
contrib_sha256=bc499ce3a1421b2474c20cce9949a574311bb3b6a71a5527e00e6f71cdb646b9

# ---------------------------------------------------------------------------
# Flavour: CUDA when nvcc, cuDNN 9 and cuBLAS are all there, unless --cpu.
cuda=""
cuda_reason=""
find_cuda() {
  local d
  for d in ${CUDA_HOME:+"$CUDA_HOME"} /usr/local/cuda; do
    if [ ! -x "$d/bin/nvcc" ]; then cuda_reason="no $d/bin/nvcc"; continue; fi
    if [ ! -f "$d/include/cudnn.h" ]; then cuda_reason="no $d/include/cudnn.h"; continue; fi
    if [ ! -e "$d/lib64/libcudnn.so.9" ]; then cuda_reason="no $d/lib64/libcudnn.so.9"; continue; fi
    if ! compgen -G "$d/lib64/libcublas.so.*" >/dev/null; then cuda_reason="no $d/lib64/libcublas.so.*"; continue; fi
    cuda=$d
    return 0
  done
  return 1
}
if [ "$force_cpu" -eq 1 ]; then
  flavour=cpu
elif find_cuda; then
  flavour=cuda
else
  log "CUDA not usable ($cuda_reason): building the CPU-only flavour"
  flavour=cpu
fi

prefix=$root/$flavour
work=$root/work-$flavour     # sources + build tree; removed after a successful build
logs=$root/logs/$flavour     # cmake/build logs of the last build, kept
stamp=$prefix/.unetseg-build-stamp

# ---------------------------------------------------------------------------
# The cmake configuration. Everything not needed by core/imgproc/dnn (the library and the
# element) and imgcodecs (the tools read JPEG photos and PNG masks) is off. Debian's tarball
# has no 3rdparty/, so nothing may be bundled or downloaded: zlib, libjpeg-turbo, libpng and
# protobuf come from Debian.
src=$work/opencv-4.10.0
npp=$work/npp-standin
cmake_flags=(
  -G Ninja
  -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_INSTALL_PREFIX="$prefix"
  -DCMAKE_INSTALL_LIBDIR=lib
  -DCMAKE_CXX_STANDARD=17
  -DBUILD_SHARED_LIBS=ON
  -DOPENCV_GENERATE_PKGCONFIG=ON
  -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF -DBUILD_DOCS=OFF
  -DBUILD_opencv_apps=OFF -DBUILD_JAVA=OFF -DBUILD_opencv_python3=OFF
  -DOPENCV_PYTHON_SKIP_DETECTION=ON
  -DBUILD_ZLIB=OFF -DBUILD_PROTOBUF=OFF -DWITH_PROTOBUF=ON -DPROTOBUF_UPDATE_FILES=ON
  -DWITH_IPP=OFF -DBUILD_IPP_IW=OFF -DWITH_ITT=OFF -DBUILD_ITT=OFF
  -DWITH_OPENCL=OFF -DOPENCV_DNN_OPENCL=OFF -DWITH_OPENCLAMDFFT=OFF -DWITH_OPENCLAMDBLAS=OFF
  -DWITH_LAPACK=OFF -DWITH_EIGEN=OFF -DWITH_TBB=OFF -DWITH_OPENMP=OFF
  -DWITH_FLATBUFFERS=OFF -DWITH_ADE=OFF -DWITH_VULKAN=OFF -DWITH_OPENVINO=OFF
  -DWITH_HALIDE=OFF -DWITH_WEBNN=OFF -DWITH_TIMVX=OFF -DWITH_CANN=OFF
  -DWITH_GTK=OFF -DWITH_QT=OFF -DWITH_OPENGL=OFF -DWITH_VA=OFF -DWITH_VA_INTEL=OFF
  -DWITH_FFMPEG=OFF -DWITH_GSTREAMER=OFF -DWITH_V4L=OFF -DWITH_1394=OFF -DWITH_GPHOTO2=OFF
  -DWITH_JPEG=ON -DBUILD_JPEG=OFF -DWITH_PNG=ON -DBUILD_PNG=OFF -DWITH_TIFF=OFF -DWITH_WEBP=OFF -DWITH_OPENJPEG=OFF
  -DWITH_JASPER=OFF -DWITH_OPENEXR=OFF -DWITH_AVIF=OFF -DWITH_IMGCODEC_HDR=OFF
  -DWITH_GDAL=OFF
)
if [ "$flavour" = cuda ]; then
  arch=${OPENCV_CUDA_ARCH:-9.0}
  cmake_flags+=(
    -DBUILD_LIST="core,imgproc,imgcodecs,dnn,cudev"
    -DOPENCV_EXTRA_MODULES_PATH="$work/opencv_contrib-4.10.0/modules/cudev"
    -DWITH_CUDA=ON -DWITH_CUDNN=ON -DWITH_CUBLAS=ON -DOPENCV_DNN_CUDA=ON
    -DWITH_CUFFT=OFF -DWITH_NVCUVID=OFF -DWITH_NVCUVENC=OFF
    -DCUDA_TOOLKIT_ROOT_DIR="$cuda"
    -DCUDNN_INCLUDE_DIR="$cuda/include" -DCUDNN_LIBRARY="$cuda/lib64/libcudnn.so"
    -DCUDA_ARCH_BIN="$arch" -DCUDA_ARCH_PTX="${arch##* }"
    # Thrust in CUDA 13 refuses C++14, OpenCV's default for nvcc.
    -DCUDA_NVCC_FLAGS=--std=c++17
    # The toolkit may have no NPP; see scripts/opencv/npp-standin/npp.h.
    -DCMAKE_CXX_FLAGS="-isystem $npp/include"
    # cuBLAS/cuDNN are loaded from the toolkit even where it is not in ld.so.conf.
    -DCMAKE_INSTALL_RPATH="$prefix/lib;$cuda/lib64"
  )
else
  cmake_flags+=(
    -DBUILD_LIST="core,imgproc,imgcodecs,dnn"
    -DWITH_CUDA=OFF
    -DCMAKE_INSTALL_RPATH="$prefix/lib"
  )
fi

# ---------------------------------------------------------------------------
# Stamp: what the prefix was built from. Cheap to compute (no tarball hashing:
# the tarballs were checked against the pinned checksums when fetched).
toolkit_versions() {
  [ "$flavour" = cuda ] || return 0
  local nvcc_ver cudnn_ver
  nvcc_ver=$("$cuda/bin/nvcc" --version | sed -n 's/.*release [0-9.]*, V\([0-9.]*\).*/\1/p')
  cudnn_ver=$(awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{printf "%s%s", sep, $3; sep="."}' \
    "$cuda/include/cudnn_version.h")
  echo "cuda $cuda nvcc $nvcc_ver cudnn $cudnn_ver"
}
expected_stamp=$(
  echo "opencv 4.10.0"
  echo "flavour $flavour"
  echo "main-sha256 $main_sha256"
  [ "$flavour" = cpu ] || echo "contrib-sha256 $contrib_sha256"
  toolkit_versions
  # patches and stand-ins: any change to scripts/opencv/ rebuilds
  echo "assets-sha256 $(cd "$assets" && find . -type f -print0 | LC_ALL=C sort -z \
    | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
  echo "cmake-flags-sha256 $(printf '%s\n' "${cmake_flags[@]}" | sha256sum | cut -d' ' -f1)"
)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$expected_stamp" ] \
   && [ -f "$prefix/lib/pkgconfig/opencv4.pc" ]; then
  log "up to date: $prefix ($flavour)"
  echo "$prefix"
  exit 0
fi

log "building the $flavour flavour into $prefix with $jobs job(s)"
start=$(date +%s)

# ---------------------------------------------------------------------------
# Build dependencies, from Debian 12.
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
packages=(build-essential cmake ninja-build pkgconf patch xz-utils zlib1g-dev
          libjpeg-dev libpng-dev protobuf-compiler libprotobuf-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------------------
# Source tarballs from Debian (trixie, else sid), found through a throw-away
# deb-src list and apt state dir so the system's apt config is left alone.
# Fetching the files by URL, because the .dsc itself answers 404 on the
# mirror (so `apt-get source` fails) while the orig tarballs are there.

debian_mirror() {
  # The mirror the system already uses (deb822 or one-line style), security excluded.
  local uri
  uri=$( { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for(i=2;i<=NF;i++) print $i}'
           grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
             | sed 's/\[[^]]*\]//' | awk '{print $2}'; } \
         | grep -v -e security -e '^cdrom:' | grep '/debian/\?$' | head -n1 || true)
  uri=${uri:-http://deb.debian.org/debian}
  echo "${uri%/}"
}

mirror=""
apt_tmp=""
apt_opts=()
cleanup() { [ -z "$apt_tmp" ] || rm -rf "$apt_tmp"; }
trap cleanup EXIT

read_sources_index() {  # once per run, in this shell (it sets apt_tmp for cleanup)
  [ -z "$apt_tmp" ] || return 0
  mirror=$(debian_mirror)
  apt_tmp=$(mktemp -d)
  mkdir -p "$apt_tmp/lists/partial" "$apt_tmp/cache/archives/partial"
  local suite
  for suite in trixie sid; do
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main"
  done >"$apt_tmp/sources.list"
  # Own lists and cache dirs: nothing of this reaches /var/lib/apt or /var/cache/apt.
  apt_opts=(-o Dir::Etc::sourcelist="$apt_tmp/sources.list" -o Dir::Etc::sourceparts=-
            -o Dir::State::Lists="$apt_tmp/lists" -o Dir::Cache="$apt_tmp/cache"
            -o APT::Sandbox::User="$(id -un)")
  log "reading the opencv source index of trixie and sid from $mirror"
  apt-get "${apt_opts[@]}" -qq update >&2
}

locate_in_sources_index() {  # file -> "directory sha256 version" of a 4.10.0+dfsg-* entry
  apt-cache "${apt_opts[@]}" showsrc opencv | awk -v want="$1" '
    BEGIN { RS = ""; FS = "\n" }
    {
      ver = ""; dir = ""; sha = ""; insha = 0
      for (i = 1; i <= NF; i++) {
        l = $i
        if (l ~ /^Version: /) ver = substr(l, 10)
        else if (l ~ /^Directory: /) dir = substr(l, 12)
        else if (l ~ /^Checksums-Sha256:/) insha = 1
        else if (l ~ /^ / && insha) { split(l, a, " "); if (a[3] == want) sha = a[1] }
        else if (l !~ /^ /) insha = 0
      }
      if (ver ~ /^4\.10\.0\+dfsg-/ && sha != "") { print dir, sha, ver; exit }
    }'
}

fetch_orig() {  # file sha256
  local file=$1 sha=$2 dest=$downloads/$1 dir="" index_sha="" ver=""
  if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum --quiet -c - 2>/dev/null; then
    return 0
  fi
  mkdir -p "$downloads"
  read_sources_index
  read -r dir index_sha ver < <(locate_in_sources_index "$file") || true
  [ -n "$dir" ] || die "$file: no opencv 4.10.0+dfsg-* in trixie or sid on $mirror"
  [ "$index_sha" = "$sha" ] || die "$file: Sources index (opencv $ver) says sha256 $index_sha, expected $sha"
  log "downloading $mirror/$dir/$file (opencv $ver)"
  # apt-helper checks the hash itself; the second check guards the rename.
  rm -f "$dest.part"
  /usr/lib/apt/apt-helper -o APT::Sandbox::User="$(id -un)" \
    download-file "$mirror/$dir/$file" "$dest.part" "SHA256:$sha" >&2
  echo "$sha  $dest.part" | sha256sum --quiet -c - || die "$file: sha256 mismatch"
  mv "$dest.part" "$dest"
}

fetch_orig "$main_tarball" "$main_sha256"
[ "$flavour" = cpu ] || fetch_orig "$contrib_tarball" "$contrib_sha256"

# ---------------------------------------------------------------------------
# Fresh tree: unpack, patch, NPP stand-in.
rm -rf "$work"
mkdir -p "$work"
log "unpacking $main_tarball"
tar -xJf "$downloads/$main_tarball" -C "$work"
if [ "$flavour" = cuda ]; then
  tar -xJf "$downloads/$contrib_tarball" -C "$work" 'opencv_contrib-4.10.0/modules/cudev'
fi
for p in "$assets"/*.patch; do
  log "applying $(basename "$p")"
  patch -d "$src" -p1 --forward --quiet <"$p" >&2
done
if [ "$flavour" = cuda ]; then
  # A real npp.h in the toolkit's include dir (an -I, earlier) is found first.
  mkdir -p "$npp/include"
  cp "$assets/npp-standin/npp.h" "$npp/include/"
fi

# ---------------------------------------------------------------------------
# Configure, build, install (stripped).
build=$work/build
rm -rf "$logs"
mkdir -p "$build" "$logs"
log "configuring (log: $logs/cmake.log)"
if ! cmake -S "$src" -B "$build" "${cmake_flags[@]}" >"$logs/cmake.log" 2>&1; then
  tail -n 40 "$logs/cmake.log" >&2
  die "cmake failed, see $logs/cmake.log"
fi
# A CUDA flavour that silently lost CUDA or cuDNN is not what was asked for.
if [ "$flavour" = cuda ]; then
  grep -q 'NVIDIA CUDA: *YES' "$logs/cmake.log" || die "cmake did not enable CUDA, see $logs/cmake.log"
  grep -q 'cuDNN: *YES' "$logs/cmake.log" || die "cmake did not find cuDNN, see $logs/cmake.log"
fi

log "compiling (nice -n 10, $jobs job(s); log: $logs/build.log)"
if ! nice -n 10 cmake --build "$build" -j "$jobs" >"$logs/build.log" 2>&1; then
  grep -B2 -A20 -m3 -E 'error|FAILED' "$logs/build.log" >&2 || tail -n 40 "$logs/build.log" >&2
  [ "$flavour" = cpu ] || log "(--cpu builds the CPU-only flavour)"
  die "build failed, see $logs/build.log (tree kept in $work)"
fi

rm -rf "$prefix"
cmake --install "$build" --strip >"$logs/install.log" 2>&1 \
  || { tail -n 20 "$logs/install.log" >&2; die "install failed"; }
# OpenCV writes "-L/dir/lib64" entries of its link line into Libs.private as
# "-L-L/dir -llib64"; put them back together.
sed -i -E 's#-L-L([^ ]+) -l([^ ]+)#-L\1/\2#g' "$prefix/lib/pkgconfig/opencv4.pc"

# ---------------------------------------------------------------------------
# Sanity check: a program built against the prefix through its .pc must load
# the libraries and answer. Without a GPU the device count is -1 (no driver)
# or 0; with one, it is the number of devices.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
pc_version=$(pkg-config --modversion opencv4) || die "pkg-config cannot read $PKG_CONFIG_PATH/opencv4.pc"
log "pkg-config opencv4: $pc_version, libs: $(pkg-config --libs opencv4)"
check=$work/sanity
mkdir -p "$check"
cat >"$check/main.cpp" <<'EOF'
#include <iostream>
#include <sstream>
#include <string>
#include <opencv2/core.hpp>
#include <opencv2/core/cuda.hpp>
#include <opencv2/dnn.hpp>

int main() {
    std::istringstream info(cv::getBuildInformation());
    for (std::string line; std::getline(info, line);) {
        // the module list and the CUDA/cuDNN/protobuf lines
        if (line.find("To be built") != std::string::npos ||
            line.find("JPEG:") != std::string::npos || line.find("PNG:") != std::string::npos ||
            line.find("CUDA") != std::string::npos || line.find("cuDNN") != std::string::npos ||
            line.find("NVIDIA") != std::string::npos || line.find("Protobuf") != std::string::npos)
            std::cout << line << "\n";
    }
    std::cout << "cv::getVersionString(): " << cv::getVersionString() << "\n";
    // compiled-in targets of dnn's CUDA backend (CUDA, CUDA_FP16), listed even without a GPU
    std::cout << "dnn DNN_BACKEND_CUDA targets: "
              << cv::dnn::getAvailableTargets(cv::dnn::DNN_BACKEND_CUDA).size() << "\n";
    std::cout << "cv::cuda::getCudaEnabledDeviceCount(): " << cv::cuda::getCudaEnabledDeviceCount() << "\n";
    return 0;
}
EOF
# shellcheck disable=SC2046  # pkg-config output is meant to be split
g++ -std=c++17 -O1 -o "$check/sanity" "$check/main.cpp" $(pkg-config --cflags --libs opencv4) \
  -Wl,-rpath,"$prefix/lib" || die "sanity check: cannot compile against $prefix"
sanity_out=$("$check/sanity") || die "sanity check: the program built against $prefix does not run"
echo "$sanity_out" >&2
# The tools read JPEG photos and PNG masks: a build that lost either codec is not usable.
for codec in JPEG PNG; do
  grep -Eq "^ *$codec: +[^N ]" <<<"$sanity_out" || die "sanity check: imgcodecs in $prefix has no $codec"
done
if [ "$flavour" = cuda ]; then
  if ! grep -q 'cuDNN: *YES' <<<"$sanity_out" \
     || ! grep -q 'DNN_BACKEND_CUDA targets: [1-9]' <<<"$sanity_out"; then
    die "sanity check: $prefix has no dnn CUDA backend"
  fi
fi

# Drop the tree: it is large (the CUDA one especially) and a rebuild starts afresh anyway.
rm -rf "$work"
echo "$expected_stamp" >"$stamp"
log "done in $(( $(date +%s) - start ))s: $prefix ($flavour)"
echo "$prefix"
