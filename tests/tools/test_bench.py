#!/usr/bin/python3
"""unetseg-bench (tools/bench.cpp) end to end on small sizes: every section runs and reports
figures in its table and JSON, and bad usage gets a clear message. No figure is compared with a
speed: speed belongs in the benchmark's output, not in tests.

Needs the build (UNETSEG_BUILD_ROOT), the known-answer test models (UNETSEG_TEST_MODELS), the
element (GST_PLUGIN_PATH_1_0) and ../shared (UNETSEG_SHARED): meson test sets them.
"""

import json
import os
import subprocess
import tempfile
import unittest

BENCH = os.path.join(os.environ.get("UNETSEG_BUILD_ROOT", "build"), "tools", "unetseg-bench")
MODEL = os.path.join(os.environ.get("UNETSEG_TEST_MODELS", ""), "unet_rg.onnx")
SHARED = os.environ.get("UNETSEG_SHARED", "")
MODES = ["overlay", "alpha", "blur", "replace", "mask"]


def bench(*args):
    return subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=600)


class SectionRun(unittest.TestCase):
    """Runs unetseg-bench once for the class, with args() and --json, keeping the result and
    the JSON report; every test first checks that the run succeeded."""

    @classmethod
    def args(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        json_path = os.path.join(cls.tmp.name, "bench.json")
        cls.result = bench(*cls.args(), "--json", json_path)
        cls.report = None
        if cls.result.returncode == 0:
            with open(json_path) as f:
                cls.report = json.load(f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.assertEqual(self.result.returncode, 0, self.result.stderr)


class AllSections(SectionRun):
    @classmethod
    def args(cls):
        return ("--model", MODEL, "--sizes", "160x120,96x64", "--frames", "3", "--warmup", "1",
                "--sections", "library,element,peer,memory", "--peer-size", "64",
                "--peer-frame", "96x64", "--peer-frames", "1", "--memory-frames", "40",
                "--memory-size", "64x48")

    def test_tables_on_stdout(self):
        for title in ("Library:", "Composite (draw()),", "Heap allocations", "Element:", "Peer:",
                      "Memory:"):
            self.assertIn(title, self.result.stdout)
        print(self.result.stdout)

    def test_machine_and_model(self):
        self.assertEqual(self.report["model"]["name"], "unet_rg")
        self.assertEqual(self.report["model"]["backend"], "cpu")
        self.assertGreaterEqual(self.report["machine"]["cores"], 1)
        self.assertTrue(self.report["machine"]["opencv"].startswith("4."))

    def test_library_times_every_refinement(self):
        self.assertIn("Refinement,", self.result.stdout)
        for r in self.report["library"]:
            refinement = r["refinement"]
            self.assertEqual(sorted(refinement), sorted(["islands", "guided", "smooth", "feather",
                                                         "all", "thumbnail", "temporal"]))
            for name, step in refinement.items():
                self.assertEqual(len(step["all"]), 3, name)
                self.assertGreater(step["median"], 0, name)
                self.assertGreaterEqual(step["allocations_per_frame"], 0, name)
            self.assertGreater(refinement["guided"]["guided_radius"], 0)
            self.assertEqual(refinement["all"]["min_island"], 0.01)

    def test_library_times_every_stage_and_mode(self):
        library = self.report["library"]
        self.assertEqual([r["size"] for r in library], ["160x120", "96x64"])
        for r in library:
            for stage in ("preprocess", "forward", "postprocess", "mask", "carried",
                          "bare_forward", "run"):
                self.assertEqual(len(r[stage]["all"]), 3, stage)
                self.assertGreater(r[stage]["median"], 0, stage)
                self.assertGreaterEqual(r[stage]["p95"], r[stage]["median"], stage)
            self.assertEqual(sorted(r["composite"]), sorted(MODES))
            # The counter counts: OpenCV's forward allocates its intermediate blobs.
            self.assertGreater(r["bare_forward"]["allocations_per_frame"], 0)

    def test_element_pipeline(self):
        element = self.report["element"]
        self.assertEqual([r["size"] for r in element], ["160x120", "96x64"])
        for r in element:
            self.assertEqual(r["frames"], 3)
            self.assertGreater(r["fps"], 0)
            self.assertEqual(len(r["latency"]["all"]), 3)
            self.assertGreater(r["latency"]["median"], 0)
            self.assertGreater(r["bare_forward"]["median"], 0)
            self.assertGreaterEqual(r["allocations_per_frame"], 0)

    def test_peer(self):
        peer = self.report["peer"]
        self.assertEqual((peer["arch"], peer["size"]), ("u2netp", 64))
        for key in ("torch_forward", "opencv_forward", "torch_pipeline", "unetseg_pipeline"):
            self.assertEqual(len(peer[key]["all"]), 1, key)
            self.assertGreater(peer[key]["median"], 0, key)

    def test_memory_samples(self):
        memory = self.report["memory"]
        self.assertEqual(memory["frames"], 40)
        self.assertEqual([s["frame"] for s in memory["rss_mib"]], list(range(2, 41, 2)))
        self.assertTrue(all(s["mib"] > 0 for s in memory["rss_mib"]))



class RecurrentModel(SectionRun):
    """A recurrent model (state inputs beside the image) through the sections that also time a
    bare forward: that forward must feed the state inputs too, or OpenCV refuses to run."""

    @classmethod
    def args(cls):
        rec = os.path.join(os.environ.get("UNETSEG_TEST_MODELS", ""), "recurrent_rg.onnx")
        return ("--model", rec, "--sizes", "96x64", "--frames", "2", "--warmup", "1",
                "--sections", "library,element")

    def test_bare_forward_timed(self):
        self.assertEqual(self.report["model"]["name"], "recurrent_rg")
        (library,) = self.report["library"]
        self.assertEqual(len(library["bare_forward"]["all"]), 2)
        self.assertGreater(library["bare_forward"]["median"], 0)
        (element,) = self.report["element"]
        self.assertEqual(element["frames"], 2)
        self.assertGreater(element["bare_forward"]["median"], 0)


class Passes(SectionRun):
    """The passes section: every mode on RGBx and BGRx beside a memcpy, in frame copies, with the
    reference, fused and kept variants, and no allocation per frame on the element's path."""

    @classmethod
    def args(cls):
        return ("--model", MODEL, "--sizes", "160x120", "--frames", "3", "--warmup", "1",
                "--threads", "1", "--sections", "passes")

    def test_table_on_stdout(self):
        self.assertIn("Passes:", self.result.stdout)
        for layout in ("RGBx", "BGRx"):
            for mode in MODES:
                self.assertRegex(self.result.stdout, rf"160x120\s+{layout}\s+{mode}\s")

    def test_report(self):
        rows = self.report["passes"]
        self.assertEqual([r["layout"] for r in rows], ["RGBx", "BGRx"])
        for r in rows:
            self.assertEqual((r["width"], r["height"]), (160, 120))
            self.assertGreater(r["memcpy"]["median"], 0)
            self.assertEqual(sorted(r["modes"]), sorted(MODES))
            for mode, m in r["modes"].items():
                self.assertEqual(len(m["total"]["all"]), 3, mode)
                self.assertGreater(m["frame_copies"], 0, mode)
                self.assertEqual(m["total"]["allocations_per_frame"], 0, mode)
                for variant in ("reference", "fused", "kept"):
                    self.assertEqual(len(m[variant]["all"]), 3, (mode, variant))


class Flicker(SectionRun):
    """The flicker section on a few small frames of one real clip (no figure compared with a
    quality bar: only that every row is there and means what it says)."""

    @classmethod
    def args(cls):
        return ("--model", MODEL, "--sections", "flicker", "--flicker-clips",
                os.path.join(SHARED, "media", "asl", "thanks.mkv"), "--flicker-frames", "6",
                "--flicker-size", "64x48", "--flicker-threshold", "10")

    def test_table_on_stdout(self):
        self.assertIn("Flicker:", self.result.stdout)
        self.assertIn(" thanks.mkv 6", self.result.stdout)
        print(self.result.stdout)

    def test_rows(self):
        flicker = self.report["flicker"]
        self.assertEqual(flicker["frames"], 6)
        self.assertEqual(flicker["clips"], [{"name": "thanks.mkv", "frames": 6}])
        self.assertEqual((flicker["width"], flicker["height"]), (64, 48))
        self.assertEqual(flicker["reset_threshold"], 10)
        self.assertEqual(len(flicker["frame_ms"]["all"]), 6)
        rows = flicker["rows"]
        self.assertEqual([(r["factor"], bool(r["reset"])) for r in rows],
                         [(0, False), (0.5, True), (0.7, True), (0.9, True),
                          (0.5, False), (0.7, False), (0.9, False)])
        for r in rows:
            self.assertEqual(r["pairs"], 5)
            for key in ("flicker", "hard_flicker", "deviation"):
                self.assertGreaterEqual(r[key], 0, key)
                self.assertLessEqual(r[key], 1, key)
            self.assertEqual(len(r["lag_error"]), flicker["max_lag"] + 1)
            self.assertTrue(0 <= r["lag"] <= flicker["max_lag"])
            # The lag is the best k among those with frames behind them (5 here).
            self.assertEqual(r["lag"], min(range(6), key=lambda k: (r["lag_error"][k], k)))
        raw = rows[0]
        self.assertEqual((raw["deviation"], raw["lag"]), (0, 0))
        # Smoothing without the reset can only move a mask away from the raw one as much as, or
        # more than, the same factor with it (the reset takes the raw value where it acts).
        for with_reset, without in zip(rows[1:4], rows[4:7]):
            self.assertLessEqual(with_reset["deviation"], without["deviation"] + 1e-12)

    def test_recurrent_model_gets_a_zero_state_row(self):
        # recurrent_rg counts its frames in its state: carried, its masks drift from frame to
        # frame; restarted from zero on every frame (the extra row), they do not.
        rec = os.path.join(os.environ.get("UNETSEG_TEST_MODELS", ""), "recurrent_rg.onnx")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "f.json")
            r = bench("--model", rec, "--sections", "flicker", "--flicker-clips",
                      os.path.join(SHARED, "media", "asl", "thanks.mkv"), "--flicker-frames", "4",
                      "--flicker-size", "64x48", "--json", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("restarts it from zero on every frame", r.stdout)
            with open(out) as f:
                rows = json.load(f)["flicker"]["rows"]
        self.assertEqual([bool(row["zero_state"]) for row in rows], [False] * 7 + [True])
        self.assertGreater(rows[0]["flicker"], 0.01, "the count shows in every carried mask")
        self.assertLess(rows[-1]["flicker"], rows[0]["flicker"])
        self.assertGreater(rows[-1]["deviation"], 0)

    def test_bad_clip(self):
        r = bench("--model", MODEL, "--sections", "flicker", "--flicker-clips",
                  "/nonexistent/clip.mkv")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no clip at /nonexistent/clip.mkv", r.stderr)

    def test_not_a_video(self):
        with tempfile.NamedTemporaryFile(suffix=".mkv") as junk:
            junk.write(b"not a video at all")
            junk.flush()
            r = bench("--model", MODEL, "--sections", "flicker", "--flicker-clips", junk.name)
            self.assertEqual(r.returncode, 1)
            self.assertIn(junk.name, r.stderr)


class Live(SectionRun):
    """The live section on a second of small frames with the slow test model: the frames all
    reach the sink although the model is far slower than the source (no figure compared with
    a speed: only that each count is there and consistent)."""

    @classmethod
    def args(cls):
        slow = os.path.join(os.environ.get("UNETSEG_TEST_MODELS", ""), "slow_rg.onnx")
        return ("--model", slow, "--sections", "live", "--live-seconds", "1", "--live-size",
                "64x48", "--live-fps", "30", "--smoothing", "0.5")

    def test_table_on_stdout(self):
        self.assertIn("Live: a photo as a live 64x48 30 fps source", self.result.stdout)
        self.assertIn("mask age, frames:", self.result.stdout)
        print(self.result.stdout)

    def test_counts(self):
        r = self.report["live"]
        self.assertIn("smoothing=0.5", r["pipeline"])
        self.assertEqual(r["expected"], 30)
        self.assertEqual(r["frames"], 30, "a live source's frames all reach the sink")
        self.assertEqual(r["frames"], r["rendered"] + r["dropped"])
        self.assertEqual(len(r["lateness_ms"]["all"]), r["frames"])
        self.assertEqual(len(r["age_frames"]), r["with_mask"])
        self.assertLessEqual(r["with_mask"], r["frames"])
        self.assertTrue(all(a >= 0 for a in r["age_frames"]), "no mask from a later frame")
        # The model (hundreds of ms) saw far fewer frames than the source made.
        self.assertGreaterEqual(r["model_frames"], 1)
        self.assertLess(r["model_frames"], r["frames"])

    def test_bad_live_options(self):
        for args, word in ((["--live-seconds", "0"], "--live-seconds"),
                           (["--live-fps", "1000"], "--live-fps"),
                           (["--live-size", "big"], "--live-size")):
            r = bench(*args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(word, r.stderr)


class Streams(SectionRun):
    """The streams section on two seconds of small frames with batch_rg (a model that batches):
    one stream, then two sharing the model and two with one each; each row's counts are there
    and consistent, and only shared streams of a batching model share forwards."""

    @classmethod
    def args(cls):
        model = os.path.join(os.environ.get("UNETSEG_TEST_MODELS", ""), "batch_rg.onnx")
        return ("--model", model, "--sections", "streams", "--streams", "1,2",
                "--streams-size", "64x48", "--live-seconds", "2", "--batch-timeout", "20")

    def test_table_on_stdout(self):
        self.assertIn("Streams: N live 64x48 30 fps sources", self.result.stdout)
        self.assertIn("independent", self.result.stdout)
        print(self.result.stdout)

    def test_rows(self):
        rows = self.report["streams"]
        self.assertEqual([(r["streams"], r["shared"]) for r in rows],
                         [(1, 1), (2, 1), (2, 0)])
        for r in rows:
            self.assertEqual(len(r["per_stream"]), r["streams"])
            self.assertGreater(r["cpu_share"], 0)
            for s in r["per_stream"]:
                self.assertEqual(s["expected"], 60)
                self.assertGreater(s["frames"], 0)
                self.assertGreaterEqual(s["model_frames"], 1)
                self.assertTrue(all(a >= 0 for a in s["age_frames"]["all"]))
        shared, independent = rows[1], rows[2]
        self.assertTrue(all(s["mean_batch"] == 1 for s in independent["per_stream"]),
                        "independent models never batch")
        self.assertTrue(all(1 <= s["mean_batch"] <= 2 for s in shared["per_stream"]))
        self.assertGreater(max(s["mean_batch"] for s in shared["per_stream"]), 1,
                           "two live streams sharing a batching model with a 20 ms batch "
                           "timeout share forwards")

    def test_bad_streams_options(self):
        for args in (["--streams", "0"], ["--streams", "1,x"], ["--streams-size", "big"]):
            r = bench(*args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(args[0], r.stderr)


class BadUsage(unittest.TestCase):
    def check(self, args, status, words):
        r = bench(*args)
        self.assertEqual(r.returncode, status, r.stderr)
        for word in words:
            self.assertIn(word, r.stderr)

    def test_bad_size(self):
        self.check(["--sizes", "720p,12"], 2, ["'12' is not 720p, 1080p, 2160p or WxH"])

    def test_bad_mode(self):
        self.check(["--modes", "overlay,sepia"], 2, ["unknown mode 'sepia'"])

    def test_bad_section(self):
        self.check(["--sections", "library,speed"], 2, ["unknown section 'speed'"])
        self.check(["--sections", "passes,speed"], 2, ["unknown section 'speed'"])

    def test_element_properties_as_flags(self):
        # The element's property names, checked as the library checks them, before any work.
        self.check(["--guided-radius", "5000"], 2, ["--guided-radius", "guided_radius"])
        self.check(["--smoothing", "1"], 2, ["--smoothing", "smoothing must be in [0, 1)"])
        self.check(["--mode", "sepia"], 2, ["--mode: none, overlay, alpha, blur, replace or mask"])
        self.check(["--soft-mask=maybe"], 2, ["--soft-mask: true or false"])
        self.check(["--guided", "8"], 2, ["unknown option --guided"])

    def test_bad_flicker_options(self):
        self.check(["--flicker-threshold", "-1"], 2, ["--flicker-threshold"])
        self.check(["--flicker-frames", "1"], 2, ["--flicker-frames: a whole number from 2"])
        self.check(["--flicker-size", "big"], 2, ["--flicker-size"])

    def test_missing_value(self):
        self.check(["--frames"], 2, ["missing value: --frames"])

    def test_missing_model(self):
        self.check(["--model", "/nonexistent/m.onnx", "--sections", "library"], 1,
                   ["/nonexistent/m.onnx"])

    def test_unfetched_catalog_model(self):
        env = dict(os.environ, XDG_CACHE_HOME=tempfile.gettempdir() + "/unetseg-bench-no-cache")
        r = subprocess.run([BENCH, "--model", "sinet", "--sections", "library"],
                           capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("unetseg-models fetch sinet", r.stderr)

    def test_no_photos(self):
        with tempfile.TemporaryDirectory() as empty:
            self.check(["--model", MODEL, "--sections", "library", "--images", empty], 1,
                       ["no readable photos", empty])

    def test_no_clip(self):
        self.check(["--model", MODEL, "--sections", "element", "--sizes", "64x48",
                    "--clip", "/nonexistent/clip.mp4"], 1, ["no clip at /nonexistent/clip.mp4"])

    def test_help(self):
        r = bench("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: unetseg-bench", r.stdout)
        # Every frame-path flag, named like the element's property, with its default.
        for line in ("--mode             none, overlay", "(default blur)", "--guided-radius",
                     "--soft-mask", "--smoothing-reset", "--interval", "--skip-threshold",
                     "--overlay-color", "(default 0xff00ff00)"):
            self.assertIn(line, r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
