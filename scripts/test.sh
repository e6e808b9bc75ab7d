#!/usr/bin/env bash
# Builds unetseg and runs every test: library units, the mask meta (C and Python), the element
# in GstHarness, bad input, a real clip through a real model, the tools, and a `meson install`
# of the build used alone (tests/install). Installs what it needs first. It does all of it
# against each OpenCV unetseg supports (scripts/build.sh):
#
#   build/                 Debian's OpenCV 4.6 (the zero-setup default)
#   build-opencv4.10/      OpenCV 4.10 built by scripts/build-opencv.sh into the cache (with the
#                          CUDA DNN backend when the CUDA toolkit is there; the first run on a
#                          machine builds it, about 10 minutes on 2 cores, later runs reuse it)
#
# usage: scripts/test.sh [SUITE ...]
#   SUITE                  only the meson suites named (see `meson test -C build --list`)
#   UNETSEG_OPENCV=both    both builds (the default), =system or =4.10 only one
#   UNETSEG_HARDENING=1    then the hardening checks too: scripts/test-hardening.sh (an ASan +
#                          UBSan build of the lib, meta and element suites, and the fuzz targets;
#                          about 5 minutes more). The default when CI=true (.ci/run); =0 never.
#                          Not with SUITE arguments. scripts/test-hardening.sh runs them alone.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

case "${UNETSEG_OPENCV:-both}" in
  both) flavours=(system 4.10) ;;
  system | 4.10) flavours=("$UNETSEG_OPENCV") ;;
  *) echo "test.sh: UNETSEG_OPENCV must be system, 4.10 or both, not '$UNETSEG_OPENCV'" >&2; exit 2 ;;
esac

# One line with the number of test cases, not just of suites: GoogleTest's and Python unittest's
# own counts where they printed them, one case for any other test.
count() {
  /usr/bin/python3 - "$1/meson-logs/testlog.json" "$2" <<'PY'
import json, re, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get("stdout", "") + t.get("stderr", "")
    ok = t["result"] == "OK"
    gtest_pass = re.search(r"^\[  PASSED  \] (\d+) tests?\.", out, re.M)
    gtest_fail = re.search(r"^\[  FAILED  \] (\d+) tests?,", out, re.M)
    unittest_ran = re.search(r"^Ran (\d+) tests? in", out, re.M)
    if gtest_pass or gtest_fail:
        passed += int(gtest_pass.group(1)) if gtest_pass else 0
        failed += int(gtest_fail.group(1)) if gtest_fail else 0
    elif unittest_ran:
        bad = sum(int(n) for n in re.findall(r"(?:failures|errors)=(\d+)", out))
        passed += int(unittest_ran.group(1)) - bad
        failed += bad
    elif t["result"] == "SKIP":
        skipped += 1
    elif ok:
        passed += 1
    if not ok and t["result"] != "SKIP" and not (gtest_fail or unittest_ran):
        failed += 1  # crashed or timed out before its runner could count
print(f"{passed} {failed} {skipped} {sys.argv[2]}")
PY
}

status=0
counts=()
for flavour in "${flavours[@]}"; do
  echo "== OpenCV $flavour"
  dir=$(scripts/build.sh "$flavour" | tail -n 1)
  meson test -C "$dir" --print-errorlogs --num-processes 1 "$@" || status=$?
  counts+=("$(count "$dir" "$dir")")
done

hardening_log=""
if [ "${UNETSEG_HARDENING:-$([ "${CI:-}" = true ] && echo 1 || echo 0)}" = 1 ] && [ $# -eq 0 ]; then
  hardening_log=$(mktemp)
  trap 'rm -f "$hardening_log"' EXIT
  scripts/test-hardening.sh 2>&1 | tee "$hardening_log" || status=1
fi

total_passed=0 total_failed=0 total_skipped=0
for line in "${counts[@]}"; do
  read -r p f s d <<<"$line"
  echo "unetseg ($d): $p passed, $f failed$([ "$s" -gt 0 ] && echo ", $s skipped")"
  total_passed=$((total_passed + p)) total_failed=$((total_failed + f)) total_skipped=$((total_skipped + s))
done
[ -z "$hardening_log" ] || grep '^unetseg hardening' "$hardening_log" || true
echo "unetseg: $total_passed passed, $total_failed failed$([ "$total_skipped" -gt 0 ] && echo ", $total_skipped skipped")"
exit $status
