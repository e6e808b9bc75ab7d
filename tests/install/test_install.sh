#!/usr/bin/env bash
# The installed copy, alone: `meson install --destdir` of the build being tested into a temporary
# directory (as packagers stage it), then, in an environment that holds no path of the build or
# source tree (env -i; a fresh GStreamer registry, model cache and HOME):
#
#   layout    the plugin in LIBDIR/gstreamer-1.0, the meta library in LIBDIR, the header at
#             INCLUDEDIR/gstreamer-1.0/gst/unetseg/, the .pc, the typelib in
#             LIBDIR/girepository-1.0, the .gir in DATADIR/gir-1.0, the tools in BINDIR, the
#             catalog and the unetseg_models package in DATADIR/unetseg; no build-tree path in any
#             installed file (RUNPATHs included), no __pycache__
#   plugin    gst-inspect-1.0 unetseg with nothing but GST_PLUGIN_PATH set: it loads (finds its
#             meta library by its RUNPATH), is not blacklisted, says its licence and package
#   models    the installed unetseg-models: list; fetch with no mirror and no network fails (an
#             installed copy never looks for ../shared); fetch sinet from a mirror given by
#             UNETSEG_MODEL_MIRROR into the temporary cache; path; verify, and verify of a damaged
#             file; the element runs model=sinet, and tells a name not fetched yet (naming
#             `unetseg-models fetch`) from one not in the installed catalog (listing the names)
#   examples  examples/read_mask.c built with the installed pkg-config file
#             (#include <gst/unetseg/gstunetsegmeta.h>) and run; examples/read_mask.py through the
#             installed typelib (GI_TYPELIB_PATH, LD_LIBRARY_PATH) and the installed gstunetseg
#             module (PYTHONPATH): the same lines but the times
#   tools     unetseg-segment, unetseg-eval, unetseg-bench (library and peer sections: the peer
#             is DATADIR/unetseg/bench_peer.py), unetseg-contact-sheet on generated pictures/clips
#
# usage: test_install.sh BUILD_DIR SOURCE_DIR SHARED_DIR MESON CC   (tests/meson.build runs it)
set -euo pipefail

build=$(cd "$1" && pwd -P) source=$(cd "$2" && pwd -P) shared=$3 meson=$4
read -r -a cc <<<"$5"  # the C compiler's command, e.g. "cc" or "ccache cc"
start=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/unetseg-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok   $* ($((SECONDS - start)) s)"; }

# Where meson puts things (the build's own options), under the staging directory.
read -r prefix libdir bindir datadir includedir < <("$meson" introspect --buildoptions "$build" |
  /usr/bin/python3 -c 'import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(*(o[k] for k in ("prefix", "libdir", "bindir", "datadir", "includedir")))')
stage=$tmp/stage
P=$stage$prefix
abs() { case "$1" in /*) echo "$stage$1" ;; *) echo "$P/$1" ;; esac; }
LIB=$(abs "$libdir") BIN=$(abs "$bindir") DATA=$(abs "$datadir") INC=$(abs "$includedir")

"$meson" install -C "$build" --no-rebuild --quiet --destdir "$stage" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "meson install --destdir"; }
ok "meson install --destdir $stage (prefix $prefix)"

# ---- layout
for f in "$LIB/gstreamer-1.0/libgstunetseg.so" "$LIB/libgstunetsegmeta-1.0.so.0" \
         "$INC/gstreamer-1.0/gst/unetseg/gstunetsegmeta.h" "$LIB/pkgconfig/gstunetsegmeta-1.0.pc" \
         "$LIB/girepository-1.0/GstUnetseg-1.0.typelib" "$DATA/gir-1.0/GstUnetseg-1.0.gir" \
         "$BIN/unetseg-segment" "$BIN/unetseg-eval" "$BIN/unetseg-bench" "$BIN/unetseg-models" \
         "$DATA/unetseg/catalog.toml" "$DATA/unetseg/unetseg_models/cli.py" \
         "$DATA/unetseg/bench_peer.py"; do
  [ -e "$f" ] || fail "not installed: ${f#"$stage"}"
done
[ -z "$(find "$stage" -name __pycache__)" ] || fail "__pycache__ installed"
runpath() { readelf -d "$1" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p'; }
names_tree() {  # TEXT: true if it names the build or the source tree (or something in them)
  case "$1:" in *"$build"[/:]* | *"$source"[/:]*) return 0 ;; esac
  return 1
}
while IFS= read -r -d '' f; do
  head -c 4 "$f" | grep -q ELF || continue
  if names_tree "$(runpath "$f")"; then fail "RUNPATH of $f: $(runpath "$f")"; fi
done < <(find "$stage" -type f -print0)
for f in "$LIB/pkgconfig/gstunetsegmeta-1.0.pc" "$BIN/unetseg-models"; do
  if grep -qF -e "$build" -e "$source" "$f"; then fail "$f names the build or source tree"; fi
done
plugin_runpath=$(runpath "$LIB/gstreamer-1.0/libgstunetseg.so")
# shellcheck disable=SC2016  # a literal $ORIGIN
case ":$plugin_runpath:" in
  *':$ORIGIN/..:'*) ;;
  *) fail "plugin RUNPATH '$plugin_runpath' lacks \$ORIGIN/.." ;;
esac
ok "layout; plugin RUNPATH $plugin_runpath"

# ---- the environment of a user of this prefix: nothing of the build or source tree
mkdir -p "$tmp/home" "$tmp/cache" "$tmp/work"
clean=(env -i PATH=/usr/bin:/bin HOME="$tmp/home" XDG_CACHE_HOME="$tmp/cache" TMPDIR="$tmp"
       LANG=C.UTF-8 GST_REGISTRY_1_0="$tmp/registry.bin" GST_PLUGIN_PATH="$LIB/gstreamer-1.0")
for v in "${clean[@]}"; do
  if names_tree "$v"; then fail "the environment names the build or source tree: $v"; fi
done
run() { (cd "$tmp/work" && "${clean[@]}" "$@"); }

# ---- the plugin
run gst-inspect-1.0 unetseg >"$tmp/inspect" 2>&1 || { cat "$tmp/inspect"; fail "gst-inspect-1.0 unetseg"; }
for want in "Filename  *$LIB/gstreamer-1.0/libgstunetseg.so" "License  *LGPL" \
            "Source module  *unetseg" "Binary package  *unetseg" "Origin URL  *."; do
  grep -q "$want" "$tmp/inspect" || { cat "$tmp/inspect"; fail "gst-inspect-1.0: no '$want'"; }
done
if run gst-inspect-1.0 -b 2>&1 | grep -q libgstunetseg; then fail "the plugin is blacklisted"; fi
ok "gst-inspect-1.0 unetseg with only GST_PLUGIN_PATH (and a fresh registry)"

# ---- unetseg-models
models=$BIN/unetseg-models
run "$models" --help | grep -qF "catalog: $DATA/unetseg/catalog.toml" ||
  fail "unetseg-models does not read the installed catalog"
run "$models" list >"$tmp/list" || fail "unetseg-models list"
grep -Eq "^sinet +not fetched +SINet" "$tmp/list" || { cat "$tmp/list"; fail "list: sinet"; }
grep -q "licence: MIT" "$tmp/list" || fail "list: no licences"
set +e
run env https_proxy=http://127.0.0.1:9 http_proxy=http://127.0.0.1:9 "$models" fetch sinet \
  >/dev/null 2>"$tmp/offline"
rc=$?
set -e
if [ $rc -ne 3 ] || ! grep -q "no mirror directory (set UNETSEG_MODEL_MIRROR)" "$tmp/offline"; then
  cat "$tmp/offline"
  fail "fetch with no mirror and no network: exit $rc"
fi
mkdir -p "$tmp/mirror/sinet"
cp "$shared/models/sinet/SINet.onnx" "$tmp/mirror/sinet/"
sinet=$(run env UNETSEG_MODEL_MIRROR="$tmp/mirror" "$models" fetch sinet 2>"$tmp/fetch") ||
  { cat "$tmp/fetch"; fail "unetseg-models fetch sinet"; }
[ "$sinet" = "$tmp/cache/unetseg/models/sinet.onnx" ] || fail "fetch printed '$sinet'"
[ "$(run "$models" path sinet)" = "$sinet" ] || fail "unetseg-models path sinet"
run "$models" verify sinet | grep -q "^sinet: ok" || fail "unetseg-models verify sinet"
cp "$sinet" "$tmp/sinet.bak"
printf 'x' >>"$sinet"
if run "$models" verify sinet >"$tmp/verify"; then fail "verify passed a damaged model"; fi
grep -q "^sinet: FAILED: damaged" "$tmp/verify" || { cat "$tmp/verify"; fail "verify: damage"; }
mv "$tmp/sinet.bak" "$sinet"
ok "unetseg-models list, fetch (mirror only when told), path, verify"

# ---- the element, by catalog name
run gst-launch-1.0 -q videotestsrc num-buffers=3 ! video/x-raw,width=160,height=120 ! \
  videoconvert ! unetseg model=sinet mode=blur ! fakesink >"$tmp/launch" 2>&1 ||
  { cat "$tmp/launch"; fail "pipeline with model=sinet"; }
refused() {  # MODEL TEXT: the pipeline fails with an error containing TEXT
  if run gst-launch-1.0 videotestsrc num-buffers=1 ! videoconvert ! unetseg model="$1" ! \
       fakesink >"$tmp/refused" 2>&1; then fail "model=$1 was accepted"; fi
  grep -qF -- "$2" "$tmp/refused" || { cat "$tmp/refused"; fail "model=$1: no '$2'"; }
}
refused portrait-unet "'portrait-unet' is in the catalog but not fetched yet"
refused portrait-unet "unetseg-models fetch portrait-unet"
refused sinnet "'sinnet' is not in the catalog ($DATA/unetseg/catalog.toml): known models are"
ok "pipeline with model=sinet; not fetched vs not in the catalog"

# ---- the examples, as a user copies them
cp "$source/examples/read_mask.c" "$source/examples/read_mask.py" "$tmp/work/"
# What the installed .pc says, as a user of the final prefix gets it; staged, its paths under the
# prefix are also given where DESTDIR put them, first (a packager's sysroot does the same).
flags=$(PKG_CONFIG_PATH="$LIB/pkgconfig" pkg-config --cflags --libs gstunetsegmeta-1.0 \
  gstreamer-app-1.0)
inc=$(abs "$includedir") inc=${inc#"$stage"}
case " $flags " in *" -I$inc/gstreamer-1.0 "*) ;; *) fail "pkg-config --cflags: $flags" ;; esac
staged=$(sed "s# -I$prefix/# -I$P/#g; s# -L$prefix/# -L$P/#g" <<<" $flags")
grep -q '^#include <gst/unetseg/gstunetsegmeta.h>' "$tmp/work/read_mask.c" || fail "read_mask.c"
# shellcheck disable=SC2086
"${cc[@]}" -o "$tmp/work/read-mask" "$tmp/work/read_mask.c" $staged $flags ||
  fail "read_mask.c with the installed pkg-config file"
run env LD_LIBRARY_PATH="$LIB" ./read-mask >"$tmp/c.out" 2>&1 || { cat "$tmp/c.out"; fail "read-mask"; }
# The gstunetseg module (python/meson.build) lies in PREFIX/lib/python3.X/dist-packages, which
# python3 searches by itself only under /usr/local and /usr.
gstunetseg=$(find "$stage" -path '*/gstunetseg/__init__.py' | head -n 1)
pythonpath=${gstunetseg:+${gstunetseg%/gstunetseg/__init__.py}}
run env GI_TYPELIB_PATH="$LIB/girepository-1.0" LD_LIBRARY_PATH="$LIB" PYTHONPATH="$pythonpath" \
  /usr/bin/python3 -B read_mask.py >"$tmp/py.out" 2>&1 || { cat "$tmp/py.out"; fail "read_mask.py"; }
grep -q "model sinet mask 320x320 rect 0,0 320x240 type foreground labels 0=background,1=person" \
  "$tmp/c.out" || { cat "$tmp/c.out"; fail "read-mask: no sinet mask"; }
[ "$(tail -n 1 "$tmp/c.out")" = "5 frames" ] || fail "read-mask: not 5 frames"
times='s/inference [0-9.]* ms/inference - ms/'
diff <(sed "$times" "$tmp/c.out") <(sed "$times" "$tmp/py.out") ||
  fail "read_mask.py and read-mask differ"
ok "read_mask.c (installed pkg-config) and read_mask.py (installed typelib) agree"

# ---- the tools
mkdir -p "$tmp/work/photos" "$tmp/work/masks"
run gst-launch-1.0 -q videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,width=160,height=120 ! \
  videoconvert ! pngenc ! filesink location=photos/a.png >/dev/null
run "$BIN/unetseg-segment" --model sinet photos/a.png --out masks/a.png >"$tmp/tool" 2>&1 ||
  { cat "$tmp/tool"; fail "unetseg-segment"; }
run "$BIN/unetseg-eval" --model sinet --images photos --masks masks >"$tmp/tool" 2>&1 ||
  { cat "$tmp/tool"; fail "unetseg-eval"; }
# The peer section runs DATADIR/unetseg/bench_peer.py (PyTorch) with the installed package.
run "$BIN/unetseg-bench" --model sinet --sections library,peer --sizes 64x48 --modes blur \
  --frames 2 --warmup 0 --images photos --peer-size 64 --peer-frame 64x48 --peer-frames 1 \
  --threads 1 >"$tmp/tool" 2>&1 || { cat "$tmp/tool"; fail "unetseg-bench"; }
grep -q "^Peer: u2netp at 64x64" "$tmp/tool" || { cat "$tmp/tool"; fail "unetseg-bench: no peer"; }
if [ -e "$BIN/unetseg-contact-sheet" ]; then
  run gst-launch-1.0 -q videotestsrc num-buffers=4 ! video/x-raw,width=64,height=48 ! \
    jpegenc ! avimux ! filesink location=clip.avi >/dev/null
  run "$BIN/unetseg-contact-sheet" sheet.png clip.avi clip.avi --frames 2 --width 64 \
    >"$tmp/tool" 2>&1 || { cat "$tmp/tool"; fail "unetseg-contact-sheet"; }
  [ -s "$tmp/work/sheet.png" ] || fail "unetseg-contact-sheet wrote nothing"
fi
ok "unetseg-segment, unetseg-eval, unetseg-bench, unetseg-contact-sheet"
[ -z "$(find "$stage" -name __pycache__)" ] || fail "running the tools wrote __pycache__ into the prefix"
echo "install: all checks passed in $((SECONDS - start)) s"
