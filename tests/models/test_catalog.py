#!/usr/bin/python3
"""models/catalog.toml and models/fetch.py (scripts/fetch-model.sh) on the real models.

- the catalog parses, every entry has every field, every sidecar follows docs/MODEL_SPEC.md;
- sinet and portrait-unet are fetched from the mirror (../shared/models) into a temporary
  XDG_CACHE_HOME: idempotent, a damaged cache file is replaced, a bad mirror file gives the
  checksum error and leaves nothing, no mirror and no network gives a clear error;
- the ISNet entries are fetched from the npm registry into the normal cache (downloaded once,
  later runs find them there); when that is impossible the test FAILS with the reason. Each is
  loaded by OpenCV at its size and must find the person in real photos (IoU > 0.5 against the
  masks of ../shared/data/person-dev).

Run: PYTHONPATH=models /usr/bin/python3 tests/models/test_catalog.py (python3-onnx, python3-numpy,
python3-opencv; PYTHONPATH, UNETSEG_SOURCE_ROOT and UNETSEG_SHARED as tests/meson.build sets them).
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import unittest
import unittest.mock

# OpenCV logs every refused node before raising; the tests read the exception's message instead.
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402

ROOT = os.environ.get("UNETSEG_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("UNETSEG_SHARED") or os.path.join(ROOT, "..", "shared")
MIRROR = os.path.join(SHARED, "models")
PHOTOS = os.path.join(SHARED, "data", "person-dev")
FETCH = os.path.join(ROOT, "models", "fetch.py")
WRAPPER = os.path.join(ROOT, "scripts", "fetch-model.sh")
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
from unetseg_models.catalog import (CATALOG, EXIT_CHECKSUM, EXIT_DOWNLOAD,  # noqa: E402
                                    EXIT_PREPARE, EXIT_USAGE, MODEL_FIELDS, SOURCE_FIELDS,
                                    FetchError, load_catalog, sidecar_text)
from unetseg_models.fetch import fetch, stamp_for, up_to_date  # noqa: E402  (PYTHONPATH=models)
from unetseg_models.rewrites import parse_size  # noqa: E402

REQUIRED = ["isnet-320", "isnet-512", "isnet-1024", "portrait-unet", "sinet", "selfie", "rvm"]
KINDS = {"probability": 1, "logit": 1, "two_class_logits": 2, "class_logits": None}


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def spec_problems(spec):
    """The rules of docs/MODEL_SPEC.md, as the C++ ModelSpec loader applies them."""
    problems = []
    known = {"name", "input", "output", "state"}
    problems += [f"unknown field '{k}'" for k in spec if k not in known]
    if "name" in spec and not (isinstance(spec["name"], str) and spec["name"]):
        problems.append("name must be a non-empty string")
    inp, out = spec.get("input"), spec.get("output")
    if not isinstance(inp, dict):
        return problems + ["input is required"]
    if not isinstance(out, dict):
        return problems + ["output is required"]
    problems += [f"unknown field 'input.{k}'" for k in inp if k not in
                 {"name", "width", "height", "color_order", "scale", "mean", "std",
                  "normalize_by_max"}]
    for k in ("width", "height"):
        v = inp.get(k)
        if not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 8192):
            problems.append(f"input.{k} must be an integer 1..8192")
    if inp.get("color_order", "RGB") not in ("RGB", "BGR"):
        problems.append("input.color_order must be RGB or BGR")
    if not isinstance(inp.get("scale", 1.0), (int, float)):
        problems.append("input.scale must be a number")
    for k in ("mean", "std"):
        v = inp.get(k, [0, 0, 0] if k == "mean" else [1, 1, 1])
        if not (isinstance(v, list) and len(v) == 3 and
                all(isinstance(x, (int, float)) for x in v)):
            problems.append(f"input.{k} must be 3 numbers")
        elif k == "std" and min(v) <= 0:
            problems.append("input.std must be > 0")
    if inp.get("normalize_by_max", False) not in (True, False, 0, 1):
        problems.append("input.normalize_by_max must be true/false or 1/0")
    problems += [f"unknown field 'output.{k}'" for k in out if k not in
                 {"name", "index", "kind", "minmax", "labels", "matte"}]
    if out.get("kind") not in KINDS:
        problems.append(f"output.kind must be one of {', '.join(KINDS)}")
    if "name" in out and not isinstance(out["name"], str):
        problems.append("output.name must be a string")
    index = out.get("index", 0)
    if not (isinstance(index, int) and not isinstance(index, bool) and index >= 0):
        problems.append("output.index must be an integer >= 0")
    if out.get("minmax", False) not in (True, False, 0, 1):
        problems.append("output.minmax must be true/false")
    if out.get("matte", False) not in (True, False):
        problems.append("output.matte must be true/false")
    if "name" in inp and not (isinstance(inp["name"], str) and inp["name"]):
        problems.append("input.name must be a non-empty string")
    state = spec.get("state", [])
    if not (isinstance(state, list) and all(
            isinstance(p, dict) and set(p) == {"input", "output"} and
            all(isinstance(v, str) and v for v in p.values()) for p in state)):
        problems.append("state must be a list of {input, output} name pairs")
    labels = out.get("labels")
    if labels is not None:
        if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            problems.append("output.labels must be strings")
        elif out.get("kind") == "two_class_logits" and len(labels) != 2:
            problems.append("two_class_logits has 2 labels")
    return problems


# --- running the model the way the element does (docs/MODEL_SPEC.md) --------------------------

def preprocess(img_bgr, spec):
    i = spec["input"]
    x = cv2.resize(img_bgr, (i["width"], i["height"]), interpolation=cv2.INTER_LINEAR)
    x = x.astype(np.float32)
    if i.get("color_order", "RGB") == "RGB":
        x = x[:, :, ::-1]
    x = x / x.max() if i.get("normalize_by_max") else x * i.get("scale", 1 / 255)
    x = (x - np.float32(i.get("mean", [0, 0, 0]))) / np.float32(i.get("std", [1, 1, 1]))
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def foreground(out, spec):
    o = out[0]
    if spec["output"]["kind"] == "two_class_logits":
        e = np.exp(o - o.max(axis=0))
        p = (e / e.sum(axis=0))[1]
    else:
        p = o[0]
    if spec["output"].get("minmax"):
        p = (p - p.min()) / max(float(p.max() - p.min()), 1e-8)
    return p


def photos(count):
    """The first `count` photos of person-dev (numeric order) with their masks at photo size."""
    names = sorted((n for n in os.listdir(os.path.join(PHOTOS, "images")) if n.endswith(".jpg")),
                   key=lambda n: int(n.split(".")[0]))
    for n in names[:count]:
        img = cv2.imread(os.path.join(PHOTOS, "images", n))
        mask = cv2.imread(os.path.join(PHOTOS, "masks", n[:-4] + ".png"), cv2.IMREAD_GRAYSCALE)
        mask = cv2.resize(mask, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
        yield n, img, mask > 127


def ious(onnx_path, spec, count):
    net = cv2.dnn.readNetFromONNX(onnx_path)
    result = {}
    for name, img, mask in photos(count):
        net.setInput(preprocess(img, spec))
        out = net.forward()
        p = cv2.resize(foreground(out, spec), (img.shape[1], img.shape[0])) > 0.5
        result[name] = float((p & mask).sum() / max((p | mask).sum(), 1))
    return result


class Catalog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(CATALOG, "rb") as f:
            cls.raw = tomllib.load(f)
        cls.models = load_catalog()

    def test_has_the_required_names(self):
        for name in REQUIRED:
            self.assertIn(name, self.models)

    def test_every_entry_has_every_field(self):
        hexdigits = set("0123456789abcdef")
        for m in self.raw["model"]:
            with self.subTest(model=m.get("name")):
                for field in MODEL_FIELDS:
                    self.assertIn(field, m)
                for field in ("name", "family", "description", "license"):
                    self.assertIsInstance(m[field], str)
                    self.assertTrue(m[field])
                self.assertIsInstance(m["steps"], list)
                src = m["source"]
                for field in SOURCE_FIELDS[src["kind"]]:
                    self.assertTrue(src.get(field), field)
                sums = ([src["sha256"]] if "sha256" in src else []) + \
                    ([src["tarball_sha256"]] if src["kind"] != "url" else []) + \
                    list(src.get("files", {}).values())
                for s in sums:
                    self.assertEqual(len(s), 64)
                    self.assertTrue(set(s) <= hexdigits)
                if src["kind"] == "url":
                    self.assertTrue(src["url"].startswith("https://"))
                    self.assertFalse(os.path.isabs(src["mirror"]) or ".." in src["mirror"])
                elif src["kind"] == "npm":
                    self.assertTrue(src["resource"].startswith("/models/"))
                else:  # npm-files: converted first
                    self.assertEqual(m["convert"]["from"], "tfjs")
                    self.assertIn(m["convert"]["model"],
                                  [os.path.basename(p) for p in src["files"]])

    def test_sidecars_follow_model_spec(self):
        for name, m in self.models.items():
            with self.subTest(model=name):
                spec = m["sidecar"]
                self.assertEqual(spec_problems(spec), [])
                self.assertEqual(spec.get("name"), name)
                # A fixed input size in the steps is the size the sidecar announces.
                for step in m["steps"]:
                    if step.startswith("fix_input_size:"):
                        w, h = parse_size(step.split(":", 1)[1])
                        self.assertEqual((spec["input"]["width"], spec["input"]["height"]), (w, h))
                # The sidecar survives its JSON form unchanged.
                self.assertEqual(json.loads(sidecar_text(spec)), spec)

    def test_selfie_is_prepared_for_batch_4_and_the_old_cache_is_outdated(self):
        # Batched inference across streams needs the live default at batch 4; a selfie fetched
        # before that (the stamp of the old steps) must be prepared again, not kept.
        entry = self.models["selfie"]
        self.assertEqual(entry["steps"], ["clip_to_attributes", "fix_batch:4"])
        old = dict(entry, steps=["clip_to_attributes"])
        with tempfile.TemporaryDirectory(prefix="test_catalog.") as d:
            paths = tuple(os.path.join(d, "selfie" + e) for e in (".onnx", ".json", ".stamp"))
            with open(paths[0], "wb") as f:
                f.write(b"model")
            for made_by, fresh in ((old, False), (entry, True)):
                with open(paths[2], "w") as f:
                    json.dump(dict(stamp_for(made_by), onnx_sha256=sha256_of(paths[0])), f)
                self.assertEqual(up_to_date(entry, paths), fresh)

    def test_a_bad_batch_is_refused_when_the_catalog_is_read(self):
        with open(CATALOG) as f:
            text = f.read().replace('"fix_batch:4"', '"fix_batch:four"')
        with tempfile.TemporaryDirectory(prefix="test_catalog.") as d:
            path = os.path.join(d, "catalog.toml")
            with open(path, "w") as f:
                f.write(text)
            with self.assertRaises(FetchError) as cm:
                load_catalog(path)
        self.assertIn("(selfie): bad batch 'four'", str(cm.exception))

    def test_the_rules_catch_mistakes(self):
        good = self.models["sinet"]["sidecar"]
        for change, problem in (
                (lambda s: s["input"].pop("width"), "input.width"),
                (lambda s: s["input"].update(std=[1, 0, 1]), "std must be > 0"),
                (lambda s: s["input"].update(color_order="BRG"), "color_order"),
                (lambda s: s["output"].update(kind="mask"), "output.kind"),
                (lambda s: s["output"].update(labels=["a", "b", "c"]), "2 labels"),
                (lambda s: s.update(inptu={}), "unknown field 'inptu'"),
                (lambda s: s.update(state=[{"input": "r1i"}]), "state must be"),
                (lambda s: s["output"].update(matte="yes"), "output.matte")):
            bad = json.loads(json.dumps(good))
            change(bad)
            self.assertTrue(any(problem in p for p in spec_problems(bad)), problem)

    def test_sinet_sidecar_is_the_repository_one(self):
        with open(os.path.join(ROOT, "models", "sinet.json")) as f:
            self.assertEqual(self.models["sinet"]["sidecar"], json.load(f))


class Fetcher:
    """Runs models/fetch.py in a temporary cache; `env` changes the environment."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="test_catalog.")
        self.tmp = self._tmp.name
        self.cache = os.path.join(self.tmp, "cache")
        self.models_dir = os.path.join(self.cache, "unetseg", "models")
        self.downloads = os.path.join(self.cache, "unetseg", "downloads")
        self.env = dict(os.environ, XDG_CACHE_HOME=self.cache, UNETSEG_MODEL_MIRROR=MIRROR)

    def tearDown(self):
        self._tmp.cleanup()

    def run_fetch(self, *args, cmd=None, **env):
        e = dict(self.env, **env)
        r = subprocess.run(cmd or [sys.executable, FETCH, *args], env=e, capture_output=True,
                           text=True, timeout=1500)
        return r.returncode, r.stdout, r.stderr

    def assert_clean(self):
        """Nothing half-written: no temp files and no npm work directories in the cache."""
        for d in (self.models_dir, self.downloads):
            if os.path.isdir(d):
                left = [f for f in os.listdir(d) if f.endswith(".tmp") or f.startswith(".npm-pack")]
                self.assertEqual(left, [], f"left in {d}")


class FetchFromMirror(Fetcher, unittest.TestCase):
    def test_sinet_and_portrait_unet(self):
        catalog = load_catalog()
        for name, n_photos, min_iou in (("sinet", 6, 0.5), ("portrait-unet", 6, 0.6)):
            with self.subTest(model=name):
                rc, out, err = self.run_fetch(name)
                self.assertEqual(rc, 0, err)
                path = os.path.join(self.models_dir, name + ".onnx")
                self.assertEqual(out, path + "\n", "only the path goes to stdout")
                with open(os.path.join(self.models_dir, name + ".json")) as f:
                    spec = json.load(f)
                self.assertEqual(spec, catalog[name]["sidecar"])
                model = onnx.load(path)
                dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
                self.assertEqual(dims[2:], [spec["input"]["height"], spec["input"]["width"]])
                # Real photos: the person is found (the README measures ~0.65 and ~0.78 mean).
                scores = ious(path, spec, n_photos)
                self.assertGreater(np.mean(list(scores.values())), min_iou, scores)
                self.assertIn("check: max |OpenCV(prepared) -", err)
        # SINet needs no rewrite: the cached file is the published one, byte for byte.
        self.assertEqual(sha256_of(os.path.join(self.models_dir, "sinet.onnx")),
                         catalog["sinet"]["source"]["sha256"])
        self.assert_clean()

    def test_idempotent(self):
        rc, out, err = self.run_fetch("portrait-unet")
        self.assertEqual(rc, 0, err)
        path = out.strip()
        before = os.stat(path).st_mtime_ns
        t0 = time.monotonic()
        rc, out2, err2 = self.run_fetch("portrait-unet")
        self.assertEqual(rc, 0, err2)
        self.assertEqual(out2, out)
        self.assertNotIn("preparing", err2)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(os.stat(path).st_mtime_ns, before, "an up-to-date model was rewritten")

    def test_damaged_cache_files_are_replaced(self):
        rc, out, err = self.run_fetch("portrait-unet")
        self.assertEqual(rc, 0, err)
        path = out.strip()
        good = sha256_of(path)
        sidecar = os.path.join(self.models_dir, "portrait-unet.json")
        with open(sidecar) as f:
            good_sidecar = f.read()
        with open(path, "r+b") as f:  # flip bytes in the middle of the weights
            f.seek(os.path.getsize(path) // 2)
            f.write(b"\xff" * 64)
        with open(sidecar, "w") as f:
            f.write("{ broken")
        rc, out2, err2 = self.run_fetch("portrait-unet")
        self.assertEqual(rc, 0, err2)
        self.assertIn("damaged", err2)
        self.assertEqual(sha256_of(path), good)
        with open(sidecar) as f:
            self.assertEqual(f.read(), good_sidecar)
        # A damaged download is fetched again from the mirror.
        [download] = [f for f in os.listdir(self.downloads) if f.endswith("prisma_nchw.onnx")]
        with open(os.path.join(self.downloads, download), "r+b") as f:
            f.truncate(1000)
        os.remove(path)
        rc, _, err3 = self.run_fetch("portrait-unet")
        self.assertEqual(rc, 0, err3)
        self.assertIn("damaged", err3)
        self.assertEqual(sha256_of(path), good)
        self.assert_clean()

    def test_bad_mirror_file(self):
        mirror = os.path.join(self.tmp, "mirror")
        os.makedirs(os.path.join(mirror, "sinet"))
        with open(os.path.join(MIRROR, "sinet", "SINet.onnx"), "rb") as f:
            data = f.read()
        with open(os.path.join(mirror, "sinet", "SINet.onnx"), "wb") as f:
            f.write(data[: len(data) // 2])  # a truncated copy
        rc, out, err = self.run_fetch("sinet", UNETSEG_MODEL_MIRROR=mirror)
        self.assertEqual(rc, EXIT_CHECKSUM, err)
        self.assertEqual(out, "")
        self.assertIn("checksum mismatch", err)
        self.assertIn(load_catalog()["sinet"]["source"]["sha256"], err)  # expected
        self.assertIn(hashlib.sha256(data[: len(data) // 2]).hexdigest(), err)  # got
        self.assertIn(os.path.join(mirror, "sinet", "SINet.onnx"), err)
        self.assertEqual(os.listdir(self.models_dir), [])
        self.assertEqual(os.listdir(self.downloads), [])

    def test_no_mirror_and_no_network(self):
        empty = os.path.join(self.tmp, "empty-mirror")
        os.mkdir(empty)
        # A proxy that refuses connections stands for "no network", whatever this machine has.
        offline = dict(UNETSEG_MODEL_MIRROR=empty, https_proxy="http://127.0.0.1:9",
                       HTTPS_PROXY="http://127.0.0.1:9", npm_config_registry="http://127.0.0.1:9/",
                       npm_config_fetch_retries="0", npm_config_offline="false")
        rc, out, err = self.run_fetch("sinet", **offline)
        self.assertEqual(rc, EXIT_DOWNLOAD, err)
        self.assertIn("downloading https://raw.githubusercontent.com", err)
        self.assertIn("sinet/SINet.onnx", err)  # where a mirror copy would be looked for
        self.assertIn("network", err)
        rc, out, err = self.run_fetch("isnet-320", **offline)
        self.assertEqual(rc, EXIT_DOWNLOAD, err)
        self.assertIn("npm pack @imgly/background-removal-data@1.4.5 failed", err)
        self.assertEqual(os.listdir(self.models_dir), [])
        self.assert_clean()

    def test_preparation_failure(self):
        # A catalog entry whose preparation cannot work (here: an output the model lacks), run
        # in-process with the same cache: exit code 5, the step and the reason, nothing cached.
        rc, _, err = self.run_fetch("sinet")
        self.assertEqual(rc, 0, err)
        entry = json.loads(json.dumps(load_catalog()["sinet"]))
        entry["steps"] = ["keep_output:probabilities"]
        with unittest.mock.patch.dict(os.environ, self.env):
            with self.assertRaises(FetchError) as cm:
                fetch(entry)
        self.assertEqual(cm.exception.code, EXIT_PREPARE)
        msg = str(cm.exception)
        self.assertIn("preparing sinet", msg)
        self.assertIn("step keep_output:probabilities", msg)
        self.assertIn("no output 'probabilities'", msg)
        # The model cached before is not what this entry describes: it is gone, not half-kept.
        self.assertEqual(os.listdir(self.models_dir), [])
        self.assert_clean()

    def test_usage(self):
        rc, out, err = self.run_fetch("no-such-model")
        self.assertEqual(rc, EXIT_USAGE)
        self.assertIn("unknown model 'no-such-model'", err)
        for name in REQUIRED:
            self.assertIn(name, err)
        rc, out, err = self.run_fetch("--list")
        self.assertEqual(rc, 0)
        self.assertEqual(out.split(), list(load_catalog()))
        rc, out, err = self.run_fetch()
        self.assertEqual(rc, EXIT_USAGE)
        rc, out, err = self.run_fetch("--help")
        self.assertEqual(rc, 0)
        self.assertIn("isnet-512", out)

    def test_the_script_wraps_it(self):
        rc, out, err = self.run_fetch(cmd=[WRAPPER, "sinet"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, os.path.join(self.models_dir, "sinet.onnx") + "\n")
        rc, out, err = self.run_fetch(cmd=[WRAPPER, "--list"])
        self.assertEqual(out.split(), list(load_catalog()))
        rc, _, _ = self.run_fetch(cmd=[WRAPPER, "nope"])
        self.assertEqual(rc, EXIT_USAGE)


class Isnet(unittest.TestCase):
    """The ISNet entries, from the npm registry into the normal cache (once: later runs find
    them there). A download that cannot happen is a failure, not a skip."""

    PHOTOS = {"isnet-320": 4, "isnet-512": 3, "isnet-1024": 1}  # 1024 is ~3.5 s a forward
    fetched = {}

    @classmethod
    def setUpClass(cls):
        cls.catalog = load_catalog()
        for name in cls.PHOTOS:
            r = subprocess.run([sys.executable, FETCH, name], capture_output=True, text=True,
                               timeout=1500)
            cls.fetched[name] = (r.returncode, r.stdout.strip(), r.stderr)
            sys.stderr.write(r.stderr)

    def check(self, name):
        rc, path, err = self.fetched[name]
        self.assertEqual(rc, 0, f"fetching {name} failed (the npm registry must be reachable "
                                f"once, or the cache filled beforehand):\n{err}")
        with open(os.path.join(os.path.dirname(path), name + ".json")) as f:
            spec = json.load(f)
        self.assertEqual(spec, self.catalog[name]["sidecar"])
        size = spec["input"]["width"]
        net = cv2.dnn.readNetFromONNX(path)
        net.setInput(np.zeros((1, 3, size, size), np.float32))
        self.assertEqual(net.forward().shape, (1, 1, size, size))
        scores = ious(path, spec, self.PHOTOS[name])
        sys.stderr.write(f"{name}: IoU {scores}\n")
        for photo, iou in scores.items():
            self.assertGreater(iou, 0.5, f"{name} on {photo}: IoU {iou:.2f}")

    def test_isnet_320(self):
        self.check("isnet-320")

    def test_isnet_512(self):
        self.check("isnet-512")

    def test_isnet_1024(self):
        self.check("isnet-1024")


if __name__ == "__main__":
    cv2.setNumThreads(2)
    unittest.main(verbosity=2)
