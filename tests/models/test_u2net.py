#!/usr/bin/python3
"""U-Net / U2-Net / U2-Netp definitions (unet.py, u2net.py in models/unetseg_models), their
exporter (export.py there, and models/export.py) and the official U2-Net pipeline
(u2net_reference.py there), checked against OpenCV 4.6 DNN, the C++ Segmenter
(tools/unetseg-segment) and the unetseg element.

  (a) architecture: parameter counts (44.0 M, 1.13 M as published), official state_dict keys,
      output shapes; U-Net output size == input size.
  (b) parity on random weights: PyTorch vs the exported ONNX run by cv2.dnn vs the C++ Segmenter
      on the same image, max abs difference < 1e-4 on the probability map.
  (c) the official test-time pipeline vs the element's output on real photos.
  (d) bad checkpoints: clear messages naming the file and what to do.

Run: PYTHONPATH=models /usr/bin/python3 tests/models/test_u2net.py (python3-torch, python3-onnx,
python3-numpy, python3-opencv, python3-skimage, python3-pil). The C++ and element parts need a
build: they find it through UNETSEG_BUILD_ROOT (set by meson, with PYTHONPATH) and are skipped,
saying so, without one.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.environ.get("UNETSEG_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
from unetseg_models import export, u2net, unet  # noqa: E402  (PYTHONPATH=models)
from unetseg_models import u2net_reference as reference  # noqa: E402
from unetseg_models.checks import check_image  # noqa: E402

EXPORT = os.path.join(ROOT, "models", "export.py")
BUILD = os.environ.get("UNETSEG_BUILD_ROOT", "")
SEGMENT = os.path.join(BUILD, "tools", "unetseg-segment") if BUILD else ""
PLUGIN_DIR = os.environ.get("GST_PLUGIN_PATH_1_0") or (
    os.path.join(BUILD, "gst-plugin") if BUILD else "")
SHARED = os.environ.get("UNETSEG_SHARED") or os.path.join(ROOT, "..", "shared")
PHOTOS = os.path.join(SHARED, "data", "person-dev", "images")
# Different sizes: smaller than the model (upscaled in, mask shrunk out), shrunk by < 2x,
# taller than wide, and shrunk by > 2x (INTER_LINEAR / INTER_AREA under "resize": "auto").
PHOTO_NAMES = ["1.jpg", "105.jpg", "111.jpg", "219.jpg"]
PARITY = 1e-4

torch.set_num_threads(2)
cv2.setNumThreads(2)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def quiet(msg):
    pass


def within_one(a, b):
    d = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return float((d <= 1).mean()), int(d.max())


def torch_net(arch, **opts):
    return export.randomize(export.build_model(arch, **opts)).eval()


def sidecar_blob(img_rgb, spec_input):
    """The Segmenter's input for an image already at the model's size (resize = identity):
    x / max(image) (normalize_by_max) or x * scale, then (x - mean) / std, RGB, NCHW."""
    x = img_rgb.astype(np.float64)
    if spec_input.get("normalize_by_max"):
        x = x / x.max()
    else:
        x = x * spec_input.get("scale", 1 / 255)
    x = (x - np.array(spec_input["mean"])) / np.array(spec_input["std"])
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def foreground(out, spec_output):
    """The Segmenter's foreground map from the raw output (N x C x H x W), as the library makes it."""
    kind = spec_output["kind"]
    if kind == "probability":
        fg = out[0, 0]
    elif kind == "logit":
        fg = 1 / (1 + np.exp(-out[0, 0].astype(np.float64)))
    elif kind == "class_logits":
        e = np.exp(out[0] - out[0].max(axis=0))
        fg = 1 - e[0] / e.sum(axis=0)
    else:
        raise AssertionError(kind)
    fg = fg.astype(np.float64)
    if spec_output.get("minmax"):
        fg = (fg - fg.min()) / (fg.max() - fg.min())
    return np.clip(fg, 0, 1)


class Tmp:
    dir = None


def setUpModule():
    Tmp.dir = tempfile.mkdtemp(prefix="unetseg-test-u2net-")


def tearDownModule():
    shutil.rmtree(Tmp.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# (a) the architectures

class Architecture(unittest.TestCase):
    def test_parameter_counts_as_published(self):
        n_full = u2net.count_parameters(u2net.U2NET())
        n_small = u2net.count_parameters(u2net.U2NETP())
        log(f"\n  U2NET {n_full} parameters ({n_full / 1e6:.2f} M), U2NETP {n_small} "
            f"({n_small / 1e6:.2f} M)")
        self.assertEqual(round(n_full / 1e6, 1), 44.0)
        self.assertEqual(round(n_small / 1e6, 2), 1.13)
        # Pinned exactly: any change to the architecture shows here.
        self.assertEqual(n_full, 44009869)
        self.assertEqual(n_small, 1131181)

    def test_official_state_dict_keys(self):
        for cls in (u2net.U2NET, u2net.U2NETP):
            keys = set(cls().state_dict())
            self.assertEqual(len(keys), 798, cls.__name__)
            for k in ["stage1.rebnconvin.conv_s1.weight", "stage1.rebnconvin.conv_s1.bias",
                      "stage1.rebnconvin.bn_s1.running_mean",
                      "stage1.rebnconvin.bn_s1.num_batches_tracked",
                      "stage1.rebnconv7.conv_s1.weight", "stage1.rebnconv6d.bn_s1.weight",
                      "stage1.rebnconv1d.bn_s1.running_var", "stage2.rebnconv6.conv_s1.weight",
                      "stage3.rebnconv5.conv_s1.weight", "stage4.rebnconv4.conv_s1.weight",
                      "stage5.rebnconv4.conv_s1.weight", "stage6.rebnconv3d.conv_s1.weight",
                      "stage5d.rebnconv1d.conv_s1.weight", "stage4d.rebnconv3d.bn_s1.bias",
                      "stage1d.rebnconvin.conv_s1.weight", "side1.weight", "side6.bias",
                      "outconv.weight", "outconv.bias"]:
                self.assertIn(k, keys, cls.__name__)
            # Nothing but the official module names.
            prefixes = {k.split(".")[0] for k in keys}
            self.assertEqual(prefixes, {f"stage{i}" for i in range(1, 7)} |
                             {f"stage{i}d" for i in range(1, 6)} |
                             {f"side{i}" for i in range(1, 7)} | {"outconv"})
            self.assertFalse([k for k in keys if "pool" in k or "relu" in k])
        full = u2net.U2NET().state_dict()
        self.assertEqual(tuple(full["stage1.rebnconv1.conv_s1.weight"].shape), (32, 64, 3, 3))
        self.assertEqual(tuple(full["stage5.rebnconv4.conv_s1.weight"].shape), (256, 256, 3, 3))
        self.assertEqual(tuple(full["stage5.rebnconv4.conv_s1.weight"].shape), (256, 256, 3, 3))
        self.assertEqual(tuple(full["outconv.weight"].shape), (1, 6, 1, 1))
        self.assertEqual(tuple(full["side3.weight"].shape), (1, 128, 3, 3))
        small = u2net.U2NETP().state_dict()
        self.assertEqual(tuple(small["stage1.rebnconv1.conv_s1.weight"].shape), (16, 64, 3, 3))
        self.assertEqual(tuple(small["stage1d.rebnconvin.conv_s1.weight"].shape),
                         (64, 128, 3, 3))

    def test_dilations_and_pooling(self):
        m = u2net.U2NETP()
        self.assertEqual(m.stage5.rebnconv4.conv_s1.dilation, (8, 8))
        self.assertEqual(m.stage5.rebnconv3d.conv_s1.dilation, (4, 4))
        self.assertEqual(m.stage1.rebnconv7.conv_s1.dilation, (2, 2))
        self.assertTrue(m.pool12.ceil_mode)
        self.assertTrue(m.stage1.pool5.ceil_mode)

    def test_output_shapes(self):
        m = torch_net("u2netp")
        for h, w in [(320, 320), (175, 211), (64, 96)]:
            with torch.no_grad():
                outs = m(torch.rand(1, 3, h, w))
                d0 = m.forward_d0(torch.rand(1, 3, h, w))
            self.assertEqual(len(outs), 7)
            for o in outs:
                self.assertEqual(tuple(o.shape), (1, 1, h, w))
                self.assertTrue(0 <= float(o.min()) and float(o.max()) <= 1)
            self.assertEqual(tuple(d0.shape), (1, 1, h, w))

    def test_unet_output_size_equals_input_size(self):
        for up in ("bilinear", "transposed"):
            for depth in (1, 3, 4):
                m = unet.UNet(classes=3, depth=depth, width=4, upsample=up).eval()
                for h, w in [(64, 64), (63, 65), (2 ** depth, 2 ** depth + 1), (37, 50)]:
                    if min(h, w) < 2 ** depth:
                        continue
                    with torch.no_grad():
                        y = m(torch.rand(1, 3, h, w))
                    self.assertEqual(tuple(y.shape), (1, 3, h, w), (up, depth, h, w))
        with self.assertRaises(ValueError):
            unet.UNet(upsample="nearest")


# ---------------------------------------------------------------------------------------------
# (b) parity: PyTorch vs OpenCV (the exported ONNX) vs the C++ Segmenter

class Parity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A real photo stretched to 320x320 (so the Segmenter's resize is the identity), as PNG.
        photo = os.path.join(PHOTOS, "105.jpg")
        img = cv2.imread(photo) if os.path.exists(photo) else None
        if img is None:
            img = cv2.cvtColor(check_image(size=320), cv2.COLOR_RGB2BGR)
        cls.image_bgr = {}
        for s in (320, 200, 96):
            cls.image_bgr[s] = cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA)
            cv2.imwrite(os.path.join(Tmp.dir, f"photo{s}.png"), cls.image_bgr[s])

    def run_parity(self, arch, size=320, cpp=True, **opts):
        path = os.path.join(Tmp.dir, f"{arch}-{size}-{'-'.join(map(str, opts.values()))}.onnx")
        t0 = time.perf_counter()
        export.export(arch, path, size=size, log=quiet, warn=quiet, **opts)
        t_export = time.perf_counter() - t0
        with open(path[:-5] + ".json") as f:
            spec = json.load(f)
        img_rgb = cv2.cvtColor(self.image_bgr[size], cv2.COLOR_BGR2RGB)
        blob = sidecar_blob(img_rgb, spec["input"])

        net = torch_net(arch, **opts)
        module = export.inference_module(arch, net).eval()
        with torch.no_grad():
            ref = module(torch.from_numpy(blob)).numpy()
        cvnet = cv2.dnn.readNetFromONNX(path)
        cvnet.setInput(blob)
        t0 = time.perf_counter()
        out = cvnet.forward()
        t_cv = time.perf_counter() - t0
        self.assertEqual(out.shape, ref.shape)
        d_cv = float(np.abs(out - ref).max())
        fg_ref = foreground(ref, spec["output"])
        msg = (f"\n  {arch} {opts or ''} at {size}: export {t_export:.1f} s; OpenCV forward "
               f"{t_cv:.2f} s; max |cv2.dnn - PyTorch| = {d_cv:.2e} (raw output)")
        self.assertLess(d_cv, PARITY, msg)
        if cpp:
            if not os.path.exists(SEGMENT):
                log(msg)
                self.skipTest("no build: set UNETSEG_BUILD_ROOT to a build dir with "
                              "tools/unetseg-segment")
            npy = path[:-5] + ".npy"
            subprocess.run([SEGMENT, "--model", path, os.path.join(Tmp.dir, f"photo{size}.png"),
                            "--npy", npy], check=True, capture_output=True)
            seg = np.load(npy)
            self.assertEqual(seg.shape, fg_ref.shape)
            d_cpp = float(np.abs(seg - fg_ref).max())
            msg += (f"; max |Segmenter - PyTorch| = {d_cpp:.2e} (probability map"
                    f"{', min-max normalised' if spec['output'].get('minmax') else ''})")
            self.assertLess(d_cpp, PARITY, msg)
            # The map varies (random weights give low contrast, min-max stretches it to 0..1).
            spread = float(fg_ref.max() - fg_ref.min())
            self.assertGreater(spread, 0.1 if spec["output"].get("minmax") else 1e-3)
        log(msg)

    def test_u2netp_320(self):
        self.run_parity("u2netp")

    def test_u2net_320(self):
        self.run_parity("u2net")

    def test_u2netp_ceil_mode_pooling(self):
        # 200 -> 100 -> 50 -> 25 -> 13 -> 7: MaxPool ceil_mode and the odd-size Resize targets
        # must survive export + import exactly.
        self.run_parity("u2netp", size=200, cpp=False)

    def test_unet_transposed_multiclass(self):
        self.run_parity("unet", size=96, classes=3, depth=3, width=8, upsample="transposed")

    def test_unet_bilinear_one_class(self):
        self.run_parity("unet", size=96, classes=1, depth=4, width=8, upsample="bilinear")


# ---------------------------------------------------------------------------------------------
# (c) the official pipeline vs the element, on real photos

def element_mask(model, png, out_png):
    """The element's soft mask (mode=mask soft-mask=true) for one picture, as 8-bit grey."""
    env = dict(os.environ, GST_PLUGIN_PATH_1_0=PLUGIN_DIR,
               GST_REGISTRY_1_0=os.path.join(Tmp.dir, "registry.bin"))
    dec = "pngdec" if png.endswith(".png") else "jpegdec"
    cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={png}", "!", dec, "!", "videoconvert",
           "!", "video/x-raw,format=RGB", "!", "unetseg", f"model={model}", "mode=mask",
           "soft-mask=true", "!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "pngenc",
           "!", "filesink", f"location={out_png}"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"gst-launch failed: {r.stdout}{r.stderr}")
    out = cv2.imread(out_png)
    # mode=mask paints alpha into all three colour bytes: any one channel is the mask.
    assert np.array_equal(out[:, :, 0], out[:, :, 2])
    return out[:, :, 0]


def element_convention(net, image, size=320):
    """The official pipeline with the library's one documented difference: round-to-nearest
    quantisation of the mask (the official code truncates). The resize-in is what the sidecar's
    "resize": "antialias" specifies (skimage's) and the mask goes back to the frame as MaskFilter
    does it (PIL's BILINEAR resample, 8-bit between the passes)."""
    from PIL import Image
    h, w = image.shape[:2]
    x = torch.from_numpy(reference.to_tensor_lab(reference.rescale(image, size))[None]).float()
    with torch.no_grad():
        pred = reference.norm_pred(net(x)[0])[0, 0].numpy()
    q = np.clip(np.rint(pred * 255), 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(q).resize((w, h), resample=Image.BILINEAR))


class OfficialPipeline(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(PHOTOS):
            raise unittest.SkipTest(f"no photos at {PHOTOS}")
        cls.model = os.path.join(Tmp.dir, "u2netp-ref.onnx")
        export.export("u2netp", cls.model, log=quiet, warn=quiet)
        cls.net = torch_net("u2netp")
        cls.results = {}

    def element_on(self, name):
        """(decoded RGB image, element mask, official reference mask) for a photo. The element
        gets the very pixels the official code decodes (skimage.io.imread, here re-encoded
        losslessly as PNG): JPEG decoders differ (GStreamer's jpegdec uses the 'ifast' IDCT and
        its own chroma upsampling), and that is not what is compared here."""
        if name in self.results:
            return self.results[name]
        if not os.path.isdir(PLUGIN_DIR or "/nonexistent") or not shutil.which("gst-launch-1.0"):
            self.skipTest("no element: set UNETSEG_BUILD_ROOT or GST_PLUGIN_PATH_1_0 to a build")
        path = os.path.join(PHOTOS, name)
        image = reference.read_image(path)
        png = os.path.join(Tmp.dir, name.replace(".jpg", ".png"))
        cv2.imwrite(png, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        mask = element_mask(self.model, png, os.path.join(Tmp.dir, "el-" + name + ".png"))
        ref = reference.reference_mask(self.net, path)
        self.results[name] = (image, mask, ref)
        return self.results[name]

    def test_element_computes_its_specified_pipeline(self):
        """The element == the official pipeline with the library's rounding, within 1/255 on
        >= 99.9% of pixels (measured: 100%, max 1 or 2 with float32 vs float64 in the network)."""
        for name in PHOTO_NAMES:
            image, mask, _ = self.element_on(name)
            mine = element_convention(self.net, image)
            self.assertEqual(mask.shape, image.shape[:2])
            frac, worst = within_one(mask, mine)
            log(f"\n  {name} {image.shape[1]}x{image.shape[0]}: element vs official pipeline with "
                f"the library's resizes: {100 * frac:.3f}% within 1/255, max {worst}")
            self.assertGreaterEqual(frac, 0.999, name)

    def test_element_matches_official_pipeline(self):
        """The element (sidecar "resize": "antialias", PIL-style mask resample) == the official
        U2-Net test-time pipeline, within 1/255 on >= 99.9% of pixels of every photo (measured:
        100%, max 1; before "antialias" and the PIL resample: 93.5-98.4%)."""
        fractions = {}
        for name in PHOTO_NAMES:
            image, mask, ref = self.element_on(name)
            self.assertEqual(mask.shape, ref.shape)
            frac, worst = within_one(mask, ref)
            log(f"\n  {name} {image.shape[1]}x{image.shape[0]}: element vs official pipeline: "
                f"{100 * frac:.3f}% within 1/255, max {worst}")
            fractions[name] = frac
        for name, frac in fractions.items():
            self.assertGreaterEqual(frac, 0.999, name)

    def test_official_reference_steps(self):
        """The reference is the official code path: skimage resize, max/mean/std, truncation."""
        image = reference.read_image(os.path.join(PHOTOS, "1.jpg"))
        x = reference.rescale(image)
        self.assertEqual(x.shape, (320, 320, 3))
        self.assertEqual(x.dtype, np.float64)
        self.assertLessEqual(x.max(), 1.0)
        t = reference.to_tensor_lab(x)
        undone = t * np.array(reference.STD)[:, None, None] + np.array(reference.MEAN)[:, None, None]
        self.assertAlmostEqual(float(undone.max()), 1.0, places=9)  # divided by the maximum
        np.testing.assert_allclose(undone.transpose(1, 2, 0), x / x.max(), atol=1e-12)
        pred = np.array([[0.0, 0.5, 0.999, 1.0]], np.float32)
        self.assertEqual(reference.to_mask(pred, 4, 1).tolist(), [[0, 127, 254, 255]])


# ---------------------------------------------------------------------------------------------
# (d) bad checkpoints

class BadCheckpoints(unittest.TestCase):
    def run_export(self, *args):
        return subprocess.run([sys.executable, "-B", EXPORT, *args], capture_output=True,
                              text=True, timeout=600)

    def save(self, name, obj):
        path = os.path.join(Tmp.dir, name)
        torch.save(obj, path)
        return path

    def assert_refused(self, arch, ckpt, *needles, extra=()):
        out = os.path.join(Tmp.dir, "refused.onnx")
        r = self.run_export(arch, "--checkpoint", ckpt, *extra, out)
        self.assertEqual(r.returncode, 1, r.stderr)
        for n in (ckpt,) + needles:
            self.assertIn(n, r.stderr)
        self.assertIn("nothing was written", r.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertFalse(os.path.exists(out[:-5] + ".json"))
        return r.stderr

    def test_u2net_checkpoint_given_as_u2netp(self):
        ckpt = self.save("u2net.pth", torch_net("u2net").state_dict())
        err = self.assert_refused("u2netp", ckpt, "does not fit the u2netp architecture",
                                  "stage1.rebnconv1.conv_s1.weight", "use 'u2net'")
        log("\n  " + err.strip().splitlines()[0][:400])

    def test_u2netp_checkpoint_given_as_u2net(self):
        ckpt = self.save("u2netp.pth", torch_net("u2netp").state_dict())
        self.assert_refused("u2net", ckpt, "another shape", "use 'u2netp'")

    def test_foreign_keys(self):
        ckpt = self.save("unet.pth", torch_net("unet", width=8, depth=2).state_dict())
        err = self.assert_refused("u2netp", ckpt, "keys missing", "unexpected keys",
                                  "stage1.rebnconvin.conv_s1.weight", "inc.conv.0.weight",
                                  "use 'unet --classes 1 --depth 2 --width 8")
        # And the U-Net options are named when only they differ.
        self.assert_refused("unet", ckpt, "--depth 2 --width 8", extra=("--width", "16"))
        self.assertIn("What to do", err)

    def test_unknown_keys_say_what_to_do(self):
        state = {"backbone.conv1.weight": torch.zeros(8, 3, 3, 3)}
        ckpt = self.save("other.pth", state)
        self.assert_refused("u2net", ckpt, "backbone.conv1.weight", "not a checkpoint of")

    def test_not_a_checkpoint(self):
        junk = os.path.join(Tmp.dir, "junk.pth")
        with open(junk, "wb") as f:
            f.write(os.urandom(1000))
        self.assert_refused("u2netp", junk, "is not a PyTorch checkpoint")
        empty = os.path.join(Tmp.dir, "empty.pth")
        open(empty, "wb").close()
        self.assert_refused("u2netp", empty, "is empty")
        text = os.path.join(Tmp.dir, "notes.pth")
        with open(text, "w") as f:
            f.write("these are not weights\n")
        self.assert_refused("u2netp", text, "is not a PyTorch checkpoint")
        self.assert_refused("u2netp", os.path.join(Tmp.dir, "missing.pth"), "no such file")
        lst = self.save("list.pth", [1, 2, 3])
        self.assert_refused("u2netp", lst, "holds no state_dict")

    def test_wrapped_and_dataparallel_checkpoints_load(self):
        state = torch_net("u2netp").state_dict()
        wrapped = self.save("wrapped.pth", {"epoch": 3, "state_dict": {
            "module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}})
        out = os.path.join(Tmp.dir, "wrapped.onnx")
        r = self.run_export("u2netp", "--checkpoint", wrapped, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("RANDOM", r.stderr)
        self.assertIn("max |OpenCV - PyTorch|", r.stdout)
        # Same weights as the random export: the same graph output.
        plain = os.path.join(Tmp.dir, "plain.onnx")
        r = self.run_export("u2netp", plain)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("RANDOM weights", r.stderr)
        blob = np.random.default_rng(0).standard_normal((1, 3, 320, 320)).astype(np.float32)
        outs = []
        for p in (out, plain):
            n = cv2.dnn.readNetFromONNX(p)
            n.setInput(blob)
            outs.append(n.forward())
        self.assertLess(float(np.abs(outs[0] - outs[1]).max()), 1e-6)


if __name__ == "__main__":
    unittest.main(verbosity=2)
