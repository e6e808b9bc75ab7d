#!/usr/bin/env bash
# Fetches a real model into the cache and prints the path of the cached .onnx on stdout
# (progress and status go to stderr). The model's sidecar is copied beside it, where the element
# looks for it.
#
#   scripts/fetch-model.sh NAME      fetch NAME (if needed) and print its path
#   scripts/fetch-model.sh --list    print the known names
#
# Cache:  ${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/models/NAME.onnx (+ NAME.json)
# Source: the mirror first ($UNETSEG_MODEL_MIRROR, else ../shared/models beside the repo when it
#         exists), else the public URL with curl or wget. The sha256 is checked either way, and
#         a file enters the cache only once verified (temp file + mv), so nothing half-written
#         is ever left there. A cached file with the right sha256 is not fetched again.
set -euo pipefail

# One model a line: name, file name, sha256, path in the mirror, public URL, sidecar in the repo.
CATALOG=(
  "sinet SINet.onnx f35b9e40a455248ddb53fcae605b7cb3f0fcebaa6aa7c6e4d76e928cfb0ce995 sinet/SINet.onnx https://raw.githubusercontent.com/anilsathyan7/Portrait-Segmentation/dbf69b043cf70d3362bc500ee620f20807e622d2/SINet/SINet.onnx models/sinet.json"
)

prog=$(basename "$0")
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

say() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { say "error: $*"; exit 1; }

known_names() {
  local entry
  for entry in "${CATALOG[@]}"; do printf '%s\n' "${entry%% *}"; done
}

usage() {
  printf 'usage: %s NAME | --list\nknown models: %s\n' "$prog" "$(known_names | paste -sd' ' -)" >&2
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    die "neither sha256sum nor shasum is installed: cannot verify downloads"
  fi
}

if [ $# -ne 1 ]; then
  usage
  exit 2
fi
case "$1" in
  -h | --help)
    usage
    exit 0
    ;;
  -l | --list)
    known_names
    exit 0
    ;;
esac
name=$1

entry=""
for e in "${CATALOG[@]}"; do
  if [ "${e%% *}" = "$name" ]; then
    entry=$e
    break
  fi
done
[ -n "$entry" ] || die "unknown model '$name'; known models: $(known_names | paste -sd' ' -)"
read -r _ file_name sha256 mirror_path url sidecar_rel <<<"$entry"

sidecar_src="$repo_root/$sidecar_rel"
[ -f "$sidecar_src" ] || die "the sidecar $sidecar_src of '$name' is missing from the repository"

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/models"
model_dst="$cache_dir/$name.onnx"
sidecar_dst="$cache_dir/$name.json"
mkdir -p "$cache_dir" || die "cannot create the cache directory $cache_dir"

# Temp files live in the cache directory (same file system, so mv is atomic) and are removed on
# any exit; the one that becomes the cached file is renamed away before that.
tmp_files=()
cleanup() { [ ${#tmp_files[@]} -eq 0 ] || rm -f -- "${tmp_files[@]}"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# new_tmp VAR STEM: a fresh temp file for STEM, its path put in VAR.
new_tmp() {
  local new_tmp_path
  new_tmp_path=$(mktemp "$cache_dir/.$2.XXXXXX") || die "cannot write to the cache directory $cache_dir"
  tmp_files+=("$new_tmp_path")
  printf -v "$1" '%s' "$new_tmp_path"
}

# The sidecar: keep the cached copy identical to the repository's.
install_sidecar() {
  if [ -f "$sidecar_dst" ] && cmp -s "$sidecar_src" "$sidecar_dst"; then
    return 0
  fi
  local sidecar_tmp=""
  new_tmp sidecar_tmp "$name.json"
  cp -- "$sidecar_src" "$sidecar_tmp"
  chmod 644 "$sidecar_tmp"
  mv -f -- "$sidecar_tmp" "$sidecar_dst"
  say "sidecar $sidecar_rel -> $sidecar_dst"
}

if [ -f "$model_dst" ]; then
  have=$(sha256_of "$model_dst")
  if [ "$have" = "$sha256" ]; then
    install_sidecar
    printf '%s\n' "$model_dst"
    exit 0
  fi
  say "cached $model_dst has the wrong sha256 ($have, expected $sha256): removing it, fetching again"
  rm -f -- "$model_dst"
fi

# The mirror: $UNETSEG_MODEL_MIRROR, else ../shared/models beside the repository if it exists.
mirror=""
if [ -n "${UNETSEG_MODEL_MIRROR:-}" ]; then
  mirror=$UNETSEG_MODEL_MIRROR
elif [ -d "$repo_root/../shared/models" ]; then
  mirror=$(cd "$repo_root/../shared/models" && pwd -P)
fi

tmp=""
new_tmp tmp "$name.onnx"
source_desc=""
if [ -n "$mirror" ] && [ -f "$mirror/$mirror_path" ]; then
  source_desc="mirror file $mirror/$mirror_path"
  say "copying $name ($file_name) from $source_desc"
  cp -- "$mirror/$mirror_path" "$tmp" || die "cannot copy $mirror/$mirror_path to $cache_dir"
else
  if [ -n "$mirror" ]; then
    say "$mirror_path is not in the mirror $mirror"
  else
    say "no mirror (set UNETSEG_MODEL_MIRROR, or put one at $repo_root/../shared/models)"
  fi
  source_desc=$url
  say "downloading $name ($file_name) from $url"
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 2 --connect-timeout 20 --progress-bar -o "$tmp" "$url" ||
      die "no mirror copy of $mirror_path and the download of $url failed (no network?)"
  elif command -v wget >/dev/null 2>&1; then
    wget --tries=3 --timeout=20 --progress=bar:force -O "$tmp" "$url" ||
      die "no mirror copy of $mirror_path and the download of $url failed (no network?)"
  else
    die "no mirror copy of $mirror_path, and neither curl nor wget is installed to download $url"
  fi
fi

got=$(sha256_of "$tmp")
if [ "$got" != "$sha256" ]; then
  die "checksum mismatch for $name from $source_desc: expected sha256 $sha256, got $got (nothing was cached)"
fi
chmod 644 "$tmp"
mv -f -- "$tmp" "$model_dst"
say "verified sha256 $sha256; cached $model_dst"
install_sidecar
printf '%s\n' "$model_dst"
