#!/usr/bin/env bash
# Builds the fuzz targets (clang's libFuzzer with ASan + UBSan, against the library's sources
# and Debian's OpenCV) and runs each for a bounded time; any crash, sanitizer report, leak,
# timeout or contract violation fails it (exit status != 0) and leaves the input that did it in
# BUILD/artifacts/. tests/fuzz/README.md says what each target checks.
#
# usage: tests/fuzz/run.sh [SECONDS]
#   SECONDS              per target (default 60); both targets run at the same time (2 cores)
#   UNETSEG_FUZZ_BUILD   build and corpus directory (default build-fuzz/ in the source tree);
#                        the corpora grow there from run to run, the seeds are rebuilt each run
#   UNETSEG_FUZZ_TARGETS which targets (default "sidecar onnx_graph")
#
# Reproduce a finding: BUILD/fuzz_TARGET BUILD/artifacts/TARGET-crash-...
# Regression inputs (a finding once fixed) go into tests/fuzz/regressions/TARGET/: every run
# replays them first.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-60}
build=${UNETSEG_FUZZ_BUILD:-build-fuzz}
targets=(${UNETSEG_FUZZ_TARGETS:-sidecar onnx_graph})
cxx=${CXX_FUZZ:-clang++-14}
mkdir -p "$build/obj" "$build/artifacts"

# -O1 -g: libFuzzer's usual; ASan + UBSan, every UBSan check fatal (a report is a crash).
sanitize=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -Ilib $(pkg-config --cflags opencv4))
compile() {  # SOURCE OBJECT: only when the source or a header it may include changed
  if [ ! -f "$2" ] || [ -n "$(find "$1" lib/unetseg tests/fuzz -newer "$2" -name '*pp' -print -quit)" ]; then
    "$cxx" "${flags[@]}" "${sanitize[@]/fuzzer/fuzzer-no-link}" -c "$1" -o "$2"
  fi
}
lib_objs=()
for src in model_spec model_file; do
  compile "lib/src/$src.cpp" "$build/obj/$src.o"
  lib_objs+=("$build/obj/$src.o")
done
for target in "${targets[@]}"; do
  compile "tests/fuzz/fuzz_$target.cpp" "$build/obj/fuzz_$target.o"
  "$cxx" "${sanitize[@]}" "$build/obj/fuzz_$target.o" "${lib_objs[@]}" -lopencv_core \
    -o "$build/fuzz_$target"
done

rm -rf "$build/seeds"
/usr/bin/python3 tests/fuzz/make_seeds.py "$build/seeds" >/dev/null

# Symbolised stacks (llvm-14's symbolizer is not on PATH by itself).
[ -x /usr/lib/llvm-14/bin/llvm-symbolizer ] &&
  export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-14/bin/llvm-symbolizer}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

declare -A seeds=([sidecar]=sidecar [onnx_graph]=onnx)
declare -A max_len=([sidecar]=8192 [onnx_graph]=32768)
status=0
pids=()
for target in "${targets[@]}"; do
  regressions=tests/fuzz/regressions/$target
  if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
    "$build/fuzz_$target" "$regressions"/* >"$build/$target-regressions.log" 2>&1 || {
      echo "fuzz: $target fails on a regression input ($build/$target-regressions.log):" >&2
      tail -n 40 "$build/$target-regressions.log" >&2
      status=1
    }
  fi
  mkdir -p "$build/corpus/$target"
  # -timeout: one input taking 10 s is a finding (a hang); -rss_limit_mb: so is 2 GB of memory.
  "$build/fuzz_$target" "$build/corpus/$target" "$build/seeds/${seeds[$target]}" \
    -dict="tests/fuzz/${seeds[$target]}.dict" -max_len="${max_len[$target]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$target-" >"$build/$target.log" 2>&1 &
  pids+=($!)
done
for i in "${!targets[@]}"; do
  target=${targets[$i]}
  if wait "${pids[$i]}"; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$target.log")
    cov=$(grep -o 'cov: [0-9]*' "$build/$target.log" | tail -n 1)
    echo "fuzz: $target: ${runs:-?} inputs in ${seconds} s, $cov, nothing found" \
         "(corpus $(ls "$build/corpus/$target" | wc -l) files)"
  else
    echo "fuzz: $target FOUND A PROBLEM ($build/$target.log):" >&2
    grep -A 60 -m 1 -E '^==[0-9]+==ERROR|runtime error|FUZZ FINDING|^==[0-9]+== ERROR' \
      "$build/$target.log" >&2 || tail -n 60 "$build/$target.log" >&2
    ls "$build/artifacts/$target-"* >&2 2>/dev/null || true
    status=1
  fi
done
exit $status
