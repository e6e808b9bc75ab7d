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
ninja -C build

status=0
meson test -C build --print-errorlogs --num-processes 1 "$@" || status=$?

# One closing line with the number of test cases, not just of suites: GoogleTest's own counts
# where a suite is a GoogleTest binary, one case for any other test.
/usr/bin/python3 - build/meson-logs/testlog.json <<'PY'
import json, re, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    t = json.loads(line)
    out = t.get("stdo", "")
    ok = re.search(r"^\[  PASSED  \] (\d+) tests?\.", out, re.M)
    bad = re.search(r"^\[  FAILED  \] (\d+) tests?,", out, re.M)
    if ok or bad:
        passed += int(ok.group(1)) if ok else 0
        failed += int(bad.group(1)) if bad else 0
        if t["result"] not in ("OK", "EXPECTEDFAIL") and not bad:
            failed += 1  # crashed or timed out before GoogleTest could count
    elif t["result"] == "SKIP":
        skipped += 1
    elif t["result"] == "OK":
        passed += 1
    else:
        failed += 1
print(f"unetseg: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
exit $status
