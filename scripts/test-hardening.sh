#!/usr/bin/env bash
# The hardening checks (issue 14), beside the normal flavours of scripts/test.sh, which runs this
# after them when CI=true (UNETSEG_HARDENING=1 asks for it anywhere, =0 never). Alone:
#
#   scripts/test-hardening.sh [asan] [fuzz]      (no argument: both)
#
#   asan   build-asan/: unetseg built by gcc with -Db_sanitize=address,undefined against
#          Debian's OpenCV 4.6 and GStreamer (neither instrumented); the `lib`, `meta` and
#          `element` suites run under it (the multi-instance stress test,
#          tests/element/test_stress.cpp, is in `element`). Any ASan or UBSan report fails.
#          About 4 minutes on 2 cores from scratch, most of it compiling.
#   fuzz   tests/fuzz/run.sh: the sidecar and ONNX-graph libFuzzer targets (clang, ASan + UBSan)
#          for UNETSEG_FUZZ_SECONDS each (default 60), both at once. About 80 s.
#
# The settings, and why:
#   -Dbuildtype=debug (-O0 -g): compiling with ASan + UBSan at -O2 takes 3 times longer (about
#          9 CPU-minutes against 3) for the tests it then runs 2 minutes faster; -O0 also keeps
#          every load and store that the sanitizers check.
#   GST_REGISTRY_FORK=no: GStreamer scans plugins in a child, gst-plugin-scanner, which is not
#          built with ASan and cannot load an ASan-instrumented plugin (the runtime must come
#          first); scanning in the test process itself, which has the runtime, works.
#   UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1: a UBSan report is a failure, with a stack.
#   ASAN_OPTIONS: leaks are checked in `lib` (OpenCV only: clean with no suppression), not in
#          `meta` and `element`: GLib leaks by design (its quark table is reallocated without
#          freeing the old one), and GLib, GStreamer and OpenCV, built without frame pointers,
#          give ASan's fast unwinder stacks that stop at g_malloc, so no suppression can tell
#          their one-time allocations from a leak of ours. With the slow unwinder
#          (fast_unwind_on_malloc=0) the stacks are whole and one suppression
#          (scripts/lsan-gstreamer.supp) suffices, but the element suite takes 5 times longer:
#          UNETSEG_ASAN_LEAKS=1 does that check (about 10 minutes).
#
#   UNETSEG_ASAN_BUILD   the sanitizer build directory (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."

checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(asan fuzz)
for c in "${checks[@]}"; do
  case "$c" in
    asan | fuzz) ;;
    *) echo "test-hardening.sh: the checks are asan and fuzz, not '$c'" >&2; exit 2 ;;
  esac
done

scripts/setup.sh >/dev/null

status=0
summary=()
for c in "${checks[@]}"; do
  start=$SECONDS
  case "$c" in
    asan)
      echo "== ASan + UBSan"
      dir=${UNETSEG_ASAN_BUILD:-build-asan}
      options=(-Db_sanitize=address,undefined -Dbuildtype=debug)
      if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "${options[@]}" >/dev/null
      else
        meson setup "$dir" "${options[@]}" >/dev/null
      fi
      # Only what the three suites need (not the tools, examples or the typelib).
      meson compile -C "$dir" test-lib test-meta test-element gstunetseg test-models | tail -n 1
      export GST_REGISTRY_FORK=no
      export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1
      asan=halt_on_error=1:abort_on_error=1:print_summary=1
      result=ok
      ASAN_OPTIONS=$asan:detect_leaks=1 \
        meson test -C "$dir" --no-rebuild --print-errorlogs lib || result=FAILED
      if [ "${UNETSEG_ASAN_LEAKS:-0}" = 1 ]; then
        ASAN_OPTIONS=$asan:detect_leaks=1:fast_unwind_on_malloc=0 \
          LSAN_OPTIONS=suppressions=$PWD/scripts/lsan-gstreamer.supp:print_suppressions=1 \
          meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier 4 \
          meta element || result=FAILED
      else
        ASAN_OPTIONS=$asan:detect_leaks=0 \
          meson test -C "$dir" --no-rebuild --print-errorlogs meta element || result=FAILED
      fi
      unset GST_REGISTRY_FORK UBSAN_OPTIONS
      ;;
    fuzz)
      echo "== fuzz"
      result=ok
      tests/fuzz/run.sh "${UNETSEG_FUZZ_SECONDS:-60}" || result=FAILED
      ;;
  esac
  [ "$result" = ok ] || status=1
  summary+=("unetseg hardening ($c): $result in $((SECONDS - start)) s")
done
printf '%s\n' "${summary[@]}"
exit $status
