"""unetseg-models: the models unetseg knows by name, for installed copies and source trees alike.

    unetseg-models list [--names]         every catalog model: name, fetched or not, description,
                                          licence (--names: the names alone, one a line)
    unetseg-models fetch NAME... | --all  fetch and prepare (if needed); print each cached .onnx
                   [--force]              (--force: prepare again even if up to date)
    unetseg-models path NAME              print the cached .onnx of NAME (the element's model=NAME)
    unetseg-models verify [NAME...|--all] check the cached files again: the .onnx against the
                                          sha256 its stamp recorded, the stamp against the catalog
                                          (source, steps, preparation version), the sidecar
                                          against the catalog's; no NAME: every fetched model

The cache is ${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/models (NAME.onnx, NAME.json, NAME.stamp),
where the element's model=NAME looks. The catalog is catalog.toml beside this package: in an
installed copy PREFIX/share/unetseg/catalog.toml, in a source tree models/catalog.toml.

Sources: the mirror directory when one is given ($UNETSEG_MODEL_MIRROR; in a source tree also
../shared/models beside it when that exists), else the public source (HTTPS, or `npm pack` for
the npm packages); the catalog's sha256 is checked either way.

Only paths and listings go to stdout; progress and messages go to stderr.
Exit status: 0 ok, 2 bad usage or unknown model, 3 download impossible, 4 checksum mismatch,
5 preparation failed, 1 anything else (`path`: not fetched; `verify`: a model failed its check).

Installed, the `unetseg-models` launcher runs `/usr/bin/python3 -m unetseg_models.cli` with
PYTHONPATH set to the package's directory (PREFIX/share/unetseg); in a source tree the same
module runs as `PYTHONPATH=models /usr/bin/python3 -m unetseg_models.cli` (build/models/
unetseg-models does that), and scripts/fetch-model.sh (models/fetch.py) fetches with the same
code.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree or the prefix
try:
    from .catalog import (CATALOG, EXIT_OTHER, EXIT_USAGE, FetchError, cache_root,
                          load_catalog, mirror_dir, sha256_of, sidecar_text)
    from .fetch import fetch, stamp_for
except ImportError as e:
    if (e.name or "").split(".")[0] not in ("numpy", "onnx", "cv2"):
        raise  # not a missing Debian package: a bug, shown with its traceback
    sys.exit(f"unetseg-models: error: {e}: it needs Debian's /usr/bin/python3 with python3-onnx, "
             "python3-numpy and python3-opencv (apt-get install python3-onnx python3-numpy "
             "python3-opencv)")

PROG = "unetseg-models"


def error(msg):
    print(f"{PROG}: error: {msg}", file=sys.stderr)


def cached_paths(name):
    models = os.path.join(cache_root(), "models")
    return tuple(os.path.join(models, name + ext) for ext in (".onnx", ".json", ".stamp"))


def read_stamp(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def state(entry):
    """'fetched', 'outdated' (cached, but made from another catalog entry or preparation) or
    'not fetched', from the files and the stamp alone (no checksum: `verify` does that)."""
    onnx_path, json_path, stamp_path = cached_paths(entry["name"])
    if not os.path.exists(onnx_path):
        return "not fetched"
    stamp = read_stamp(stamp_path)
    if stamp is None or not os.path.exists(json_path):
        return "outdated"
    return ("fetched" if all(stamp.get(k) == v for k, v in stamp_for(entry).items())
            else "outdated")


def problems(entry):
    """What is wrong with the cached files of `entry` (empty: all good)."""
    name = entry["name"]
    onnx_path, json_path, stamp_path = cached_paths(name)
    if not os.path.exists(onnx_path):
        return [f"not fetched (no {onnx_path})"]
    found = []
    stamp = read_stamp(stamp_path)
    if stamp is None:
        found.append(f"no readable stamp {stamp_path}: it was not made by this fetcher")
    else:
        want = stamp_for(entry)
        differ = [k for k, v in want.items() if stamp.get(k) != v]
        if differ:
            found.append(f"outdated: the stamp's {', '.join(differ)} differ from the catalog's")
        got = sha256_of(onnx_path)
        if got != stamp.get("onnx_sha256"):
            found.append(f"damaged: {onnx_path} has sha256 {got}, its stamp says "
                         f"{stamp.get('onnx_sha256')}")
    try:
        with open(json_path, "rb") as f:
            if f.read() != sidecar_text(entry["sidecar"]).encode():
                found.append(f"the sidecar {json_path} differs from the catalog's")
    except OSError:
        found.append(f"no sidecar {json_path}")
    return found


def check_names(catalog, names):
    unknown = [n for n in names if n not in catalog]
    if unknown:
        error(f"{', '.join(repr(n) for n in unknown)} {'is' if len(unknown) == 1 else 'are'} not "
              f"in the catalog ({CATALOG}): known models are {', '.join(catalog)}")
        return False
    return True


def cmd_list(catalog, args):
    if args.names:
        print("\n".join(catalog))
        return 0
    width = max(len(n) for n in catalog)
    for name, entry in catalog.items():
        print(f"{name:<{width}}  {state(entry):<11}  {entry['description']}")
        print(f"{'':<{width}}  {'':<11}  licence: {entry['license']}")
    print(f"cache: {os.path.join(cache_root(), 'models')}")
    return 0


def cmd_fetch(catalog, args):
    if args.all == bool(args.names):
        error("give one or more model NAMEs, or --all")
        return EXIT_USAGE
    if not check_names(catalog, args.names):
        return EXIT_USAGE
    status = 0
    for name in (list(catalog) if args.all else args.names):
        try:
            print(fetch(catalog[name], force=args.force), flush=True)
        except FetchError as e:
            error(f"{name}: {e}")
            status = status or e.code
    return status


def cmd_path(catalog, args):
    if not check_names(catalog, [args.name]):
        return EXIT_USAGE
    onnx_path = cached_paths(args.name)[0]
    if not os.path.exists(onnx_path):
        error(f"{args.name} is not fetched yet (no {onnx_path}): run `{PROG} fetch {args.name}`")
        return EXIT_OTHER
    print(onnx_path)
    return 0


def cmd_verify(catalog, args):
    if args.all and args.names:
        error("give model NAMEs or --all, not both")
        return EXIT_USAGE
    if not check_names(catalog, args.names):
        return EXIT_USAGE
    if args.names:
        names = args.names
    else:  # every model with files in the cache; --all: every model of the catalog
        names = [n for n in catalog
                 if args.all or os.path.exists(cached_paths(n)[0])]
        if not names:
            print(f"no model is fetched in {os.path.join(cache_root(), 'models')}",
                  file=sys.stderr)
            return 0
    status = 0
    for name in names:
        found = problems(catalog[name])
        if found:
            status = EXIT_OTHER
            print(f"{name}: FAILED: " + "; ".join(found) +
                  f" (`{PROG} fetch --force {name}` fetches it again)")
        else:
            print(f"{name}: ok ({cached_paths(name)[0]})")
    return status


def main(argv=None):
    try:
        catalog = load_catalog()
    except FetchError as e:
        error(str(e))
        return e.code
    try:
        cache = os.path.join(cache_root(), "models")
    except FetchError as e:
        cache = str(e)
    mirror = mirror_dir()
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The models unetseg knows by name: list them, fetch and prepare them into "
                    "the cache the element reads (model=NAME), print their paths, check them.",
        epilog=f"catalog: {CATALOG}\n"
               f"cache:   {cache} (NAME.onnx + NAME.json)\n"
               f"mirror:  {mirror or 'none'} ($UNETSEG_MODEL_MIRROR: a directory laid out like "
               "../shared/models)\n"
               "exit status: 0 ok, 2 usage/unknown model, 3 no mirror copy and no network,\n"
               "             4 checksum mismatch, 5 preparation failed, 1 other")
    sub = parser.add_subparsers(dest="command", metavar="list|fetch|path|verify")
    p = sub.add_parser("list", help="every catalog model, fetched or not, with its licence")
    p.add_argument("--names", action="store_true", help="the names alone, one a line")
    p = sub.add_parser("fetch", help="fetch and prepare models; print the cached .onnx paths")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every model of the catalog")
    p.add_argument("--force", action="store_true",
                   help="prepare again even if the cached model is up to date")
    p = sub.add_parser("path", help="print the cached .onnx of a model")
    p.add_argument("name", metavar="NAME")
    p = sub.add_parser("verify", help="check the cached files of models again")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true",
                   help="every model of the catalog (not fetched ones fail)")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        error("give a command: list, fetch, path or verify")
        return EXIT_USAGE
    command = {"list": cmd_list, "fetch": cmd_fetch, "path": cmd_path, "verify": cmd_verify}
    try:
        return command[args.command](catalog, args)
    except FetchError as e:  # e.g. no cache directory
        error(str(e))
        return e.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (nothing half-written was left)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
