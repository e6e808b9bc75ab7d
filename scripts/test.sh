#!/usr/bin/env bash
# Builds unetseg and runs every test: library units, the mask meta (C and Python), the element
# in GstHarness, bad input, and a real clip through a real model. Installs what it needs first.
#   ./scripts/test.sh            all tests
#   ./scripts/test.sh element    only the suites named (see `meson test -C build --list`)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

if [ -f build/build.ninja ]; then
  meson setup --reconfigure build >/dev/null
else
  meson setup build >/dev/null
fi
ninja -C build | tail -n 1

status=0
meson test -C build --print-errorlogs --num-processes 1 "$@" || status=$?

# One closing line with the number of test cases, not just of suites: GoogleTest's and Python
# unittest's own counts where they printed them, one case for any other test.
/usr/bin/python3 - build/meson-logs/testlog.json <<'PY'
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
print(f"unetseg: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
exit $status
