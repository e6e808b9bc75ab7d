#!/usr/bin/python3
"""unetseg-models (models/unetseg_models/cli.py) through the build tree's launcher, on a temporary
cache filled by hand (no download: tests/install/test_install.sh fetches sinet with the installed
copy, tests/models/test_catalog.py tests the fetching itself):

- list: every catalog name with its state (not fetched / fetched / outdated) and licence;
  --names: the names alone;
- path: the cached .onnx; not fetched: exit 1 naming `unetseg-models fetch NAME`;
- verify: ok for good files; damaged .onnx, outdated stamp, changed sidecar, missing stamp each
  fail with exit 1 and say why; with no NAME only the fetched models;
- an unknown name: exit 2 listing the catalog's names, for every command;
- the cache follows the element's rules: XDG_CACHE_HOME when absolute, else $HOME/.cache; a
  relative XDG_CACHE_HOME is ignored; neither: an error, no /tmp;
- usage errors: exit 2.

Run: UNETSEG_MODELS_TOOL=build/models/unetseg-models PYTHONPATH=models /usr/bin/python3
tests/models/test_models_cli.py (tests/meson.build sets both).
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
from unetseg_models.catalog import load_catalog, sha256_of, sidecar_text  # noqa: E402
from unetseg_models.fetch import stamp_for  # noqa: E402

TOOL = os.environ.get("UNETSEG_MODELS_TOOL", "")


class ModelsTool(unittest.TestCase):
    def setUp(self):
        if not TOOL:
            self.skipTest("UNETSEG_MODELS_TOOL is not set: run it through meson test")
        self._tmp = tempfile.TemporaryDirectory(prefix="test_models_cli.")
        self.cache = os.path.join(self._tmp.name, "cache")
        self.models_dir = os.path.join(self.cache, "unetseg", "models")
        self.catalog = load_catalog()

    def tearDown(self):
        self._tmp.cleanup()

    def run_tool(self, *args, env=None):
        e = dict(os.environ, XDG_CACHE_HOME=self.cache) if env is None else env
        r = subprocess.run(["sh", TOOL, *args], env=e, capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout, r.stderr

    def put(self, name, onnx=b"not really a model"):
        """NAME.onnx, .json and .stamp as the fetcher writes them."""
        os.makedirs(self.models_dir, exist_ok=True)
        entry = self.catalog[name]
        path = os.path.join(self.models_dir, name + ".onnx")
        with open(path, "wb") as f:
            f.write(onnx)
        with open(os.path.join(self.models_dir, name + ".json"), "w") as f:
            f.write(sidecar_text(entry["sidecar"]))
        with open(os.path.join(self.models_dir, name + ".stamp"), "w") as f:
            json.dump(dict(stamp_for(entry), onnx_sha256=sha256_of(path)), f)
        return path

    def state_of(self, name):
        rc, out, err = self.run_tool("list")
        self.assertEqual(rc, 0, err)
        for line in out.splitlines():
            if line.startswith(name + " "):
                return line[len(name):].strip().split("  ")[0]
        self.fail(f"{name} not listed:\n{out}")

    def test_list(self):
        rc, out, err = self.run_tool("list")
        self.assertEqual(rc, 0, err)
        for name, entry in self.catalog.items():
            self.assertRegex(out, rf"(?m)^{re.escape(name)} +not fetched +"
                                  rf"{re.escape(entry['description'])}$")
            self.assertIn(f"licence: {entry['license']}", out)
        self.assertIn(f"cache: {self.models_dir}", out)
        rc, out, err = self.run_tool("list", "--names")
        self.assertEqual((rc, out.split()), (0, list(self.catalog)))

    def test_path(self):
        rc, out, err = self.run_tool("path", "sinet")
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("sinet is not fetched yet", err)
        self.assertIn("`unetseg-models fetch sinet`", err)
        path = self.put("sinet")
        rc, out, err = self.run_tool("path", "sinet")
        self.assertEqual((rc, out), (0, path + "\n"), err)

    def test_verify(self):
        path = self.put("sinet")
        self.assertEqual(self.state_of("sinet"), "fetched")
        rc, out, err = self.run_tool("verify", "sinet")
        self.assertEqual((rc, out), (0, f"sinet: ok ({path})\n"), err)
        rc, out, err = self.run_tool("verify")  # only what is fetched
        self.assertEqual((rc, out), (0, f"sinet: ok ({path})\n"), err)
        rc, out, err = self.run_tool("verify", "sinet", "portrait-unet")
        self.assertEqual(rc, 1)
        self.assertIn("portrait-unet: FAILED: not fetched", out)

        with open(path, "ab") as f:
            f.write(b"!")
        rc, out, err = self.run_tool("verify", "sinet")
        self.assertEqual(rc, 1)
        self.assertIn("sinet: FAILED: damaged", out)
        self.assertIn("`unetseg-models fetch --force sinet`", out)

        self.put("sinet")
        stamp = os.path.join(self.models_dir, "sinet.stamp")
        with open(stamp) as f:
            data = json.load(f)
        with open(stamp, "w") as f:
            json.dump(dict(data, steps=["fix_input_size:256"]), f)
        self.assertEqual(self.state_of("sinet"), "outdated")
        rc, out, err = self.run_tool("verify", "sinet")
        self.assertEqual(rc, 1)
        self.assertIn("outdated: the stamp's steps", out)

        self.put("sinet")
        with open(os.path.join(self.models_dir, "sinet.json"), "a") as f:
            f.write(" ")
        rc, out, err = self.run_tool("verify", "sinet")
        self.assertEqual(rc, 1)
        self.assertIn("differs from the catalog's", out)

        self.put("sinet")
        os.remove(stamp)
        self.assertEqual(self.state_of("sinet"), "outdated")
        rc, out, err = self.run_tool("verify", "sinet")
        self.assertEqual(rc, 1)
        self.assertIn("no readable stamp", out)

    def test_unknown_names(self):
        for args in (["fetch", "sinnet"], ["path", "sinnet"], ["verify", "sinnet"]):
            with self.subTest(args=args):
                rc, out, err = self.run_tool(*args)
                self.assertEqual((rc, out), (2, ""))
                self.assertIn("'sinnet' is not in the catalog", err)
                self.assertIn("known models are " + ", ".join(self.catalog), err)

    def test_usage(self):
        for args in ([], ["fetch"], ["fetch", "sinet", "--all"], ["verify", "sinet", "--all"],
                     ["frobnicate"]):
            with self.subTest(args=args):
                rc, out, err = self.run_tool(*args)
                self.assertEqual(rc, 2, err)

    def test_cache_follows_the_element(self):
        base = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "HOME")}
        home = os.path.join(self._tmp.name, "home")
        for extra, want in (({"XDG_CACHE_HOME": self.cache, "HOME": home}, self.models_dir),
                            ({"XDG_CACHE_HOME": "relative", "HOME": home},
                             os.path.join(home, ".cache", "unetseg", "models")),
                            ({"HOME": home}, os.path.join(home, ".cache", "unetseg", "models"))):
            with self.subTest(env=extra):
                rc, out, err = self.run_tool("list", env=dict(base, **extra))
                self.assertEqual(rc, 0, err)
                self.assertIn(f"cache: {want}\n", out)
        rc, out, err = self.run_tool("list", env=dict(base, XDG_CACHE_HOME="relative"))
        self.assertEqual(rc, 1)
        self.assertIn("neither XDG_CACHE_HOME nor HOME", err)
        self.assertNotIn("/tmp", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
