#!/usr/bin/python3
"""Mask quality of SINet on the 42 person-dev photos through unetseg-eval must reproduce the
expected figures: within 1e-3, the image count exactly. SINet is fetched into the catalog cache
first, as a user would (scripts/fetch-model.sh).

usage: eval_person_dev.py UNETSEG_EVAL EXPECTED_FILE   (UNETSEG_SOURCE_ROOT, UNETSEG_SHARED set)
"""

import os
import subprocess
import sys

TOLERANCE = 1e-3


def expected_figures(path):
    """`name value` lines; '#' starts a comment line."""
    figures = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if not line.startswith("#") and len(fields) == 2:
                figures[fields[0]] = float(fields[1])
    return figures


def main(evaluator, expected_path):
    root, shared = os.environ["UNETSEG_SOURCE_ROOT"], os.environ["UNETSEG_SHARED"]
    subprocess.run([os.path.join(root, "scripts", "fetch-model.sh"), "sinet"], check=True,
                   stdout=subprocess.DEVNULL)
    data = os.path.join(shared, "data", "person-dev")
    out = subprocess.run([evaluator, "--model", "sinet", "--images", os.path.join(data, "images"),
                          "--masks", os.path.join(data, "masks"), "--limit", "42"],
                         check=True, capture_output=True, text=True).stdout
    print(out)
    got = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            try:
                got[fields[0]] = float(fields[1])
            except ValueError:
                pass
    bad = False
    for name, want in sorted(expected_figures(expected_path).items()):
        tolerance = 0 if name == "images" else TOLERANCE
        if name not in got:
            print(f"missing {name}")
            bad = True
        elif abs(got[name] - want) > tolerance:
            print(f"{name}: got {got[name]}, expected {want}")
            bad = True
        else:
            print(f"{name}: {got[name]} ok (expected {want})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
