#!/usr/bin/env bash
# Fetches a named model into the cache, prepares it for OpenCV DNN and prints the path of the
# cached .onnx on stdout (progress and messages go to stderr); its sidecar NAME.json lies beside
# it. The catalog of names is models/catalog.toml; the work is done by models/fetch.py.
#
#   scripts/fetch-model.sh NAME      fetch NAME (if needed) and print its path
#   scripts/fetch-model.sh --list    print the known names
#   scripts/fetch-model.sh --all     fetch every model
#   scripts/fetch-model.sh --help    names, cache, mirror, exit status
#
# Cache:  ${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/models/NAME.onnx (+ NAME.json)
# Source: the mirror first ($UNETSEG_MODEL_MIRROR, else ../shared/models beside the repo when it
#         exists), else the public source; sha256 checked either way.
# Needs Debian's python3 with python3-onnx, python3-numpy and python3-opencv (scripts/setup.sh).
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
exec /usr/bin/python3 "$repo_root/models/fetch.py" "$@"
