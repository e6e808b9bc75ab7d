"""The model catalog (models/catalog.toml), the cache it fills and the file handling that keeps
the cache whole: files enter it only complete and verified (a temp file renamed into place).

The cache is ${XDG_CACHE_HOME:-$HOME/.cache}/unetseg: models/NAME.onnx with its sidecar NAME.json
beside it (where the element's model=NAME looks) and NAME.stamp (what produced it); downloads/
keeps what was downloaded, so preparing another size downloads nothing. The mirror directory is
$UNETSEG_MODEL_MIRROR, else (in a source tree only) ../shared/models beside the repository when
it exists.

The catalog is catalog.toml beside this package: models/catalog.toml in a source tree,
PREFIX/share/unetseg/catalog.toml in an installed copy (meson installs the package there too).
"""

import hashlib
import json
import os
import sys
import tempfile
import tomllib

from . import PrepareError
from .rewrites import parse_step

MODELS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # models/, or the data dir
REPO = os.path.dirname(MODELS_DIR)
CATALOG = os.path.join(MODELS_DIR, "catalog.toml")

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
    "npm-files": ("package", "version", "tarball_sha256", "files", "mirror"),
}
MODEL_FIELDS = ("name", "family", "description", "license", "steps", "source", "sidecar")
CONVERTERS = {"tfjs": ("model",)}  # [model.convert] from = ..., and its required fields


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
        if source["kind"] == "npm-files":
            files = source["files"]
            if not isinstance(files, dict) or not all(
                    isinstance(v, str) and len(v) == 64 for v in files.values()):
                raise FetchError(f"{where}: source.files must map each path in the package to "
                                 "its sha256")
        convert = m.get("convert")
        if convert is not None:
            if convert.get("from") not in CONVERTERS:
                raise FetchError(f"{where}: convert.from must be one of {', '.join(CONVERTERS)}")
            for field in CONVERTERS[convert["from"]]:
                if not convert.get(field):
                    raise FetchError(f"{where}: missing field 'convert.{field}'")
            if source["kind"] != "npm-files" or not any(
                    os.path.basename(p) == convert["model"] for p in source["files"]):
                raise FetchError(f"{where}: convert.model '{convert['model']}' is not one of "
                                 "the source's files")
        elif source["kind"] == "npm-files":
            raise FetchError(f"{where}: an npm-files source needs a [model.convert] table (its "
                             "files are not an ONNX model)")
        try:
            for step in m["steps"]:
                parse_step(step)
        except PrepareError as e:
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
# The cache and its files

def cache_root():
    """The cache the element reads (lib/src/model_cache.cpp), by the same rules: a relative
    XDG_CACHE_HOME is ignored, as the XDG spec says, and there is no fallback to a shared
    directory such as /tmp."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg.startswith("/"):
        return os.path.join(xdg, "unetseg")
    home = os.environ.get("HOME", "")
    if home.startswith("/"):
        return os.path.join(home, ".cache", "unetseg")
    raise FetchError("no model cache: neither XDG_CACHE_HOME nor HOME is set to an absolute path")


def in_source_tree():
    """True when this package runs from a unetseg source tree (models/ of it), not from an
    installed copy (PREFIX/share/unetseg)."""
    return os.path.isfile(os.path.join(REPO, "scripts", "fetch-model.sh"))


def mirror_dir():
    """$UNETSEG_MODEL_MIRROR; in a source tree, else ../shared/models beside it when it exists.
    An installed copy uses a mirror only when told."""
    env = os.environ.get("UNETSEG_MODEL_MIRROR")
    if env:
        return env
    if not in_source_tree():
        return None
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
