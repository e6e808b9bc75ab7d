#!/usr/bin/python3
"""unetseg-remove (tools/unetseg-remove.in) end to end, each output checked against what the
element itself gives and read back by Debian's ffprobe/ffmpeg:

- a folder of images (PNG and JPEG, two sizes) to RGBA PNG cutouts whose alpha is the element's
  mask (mode=mask) pixel for pixel, colours untouched; masks and replaced backgrounds; SIGINT
  in the middle of a folder leaves whole images only;
- a short clip to a video with alpha (.mov PNG and .mkv FFV1) that ffprobe reports with an alpha
  pixel format, every frame's decoded alpha equal to the element's mask;
- the blurred-background mp4 close to the element's own blur;
- SIGINT in the middle of a video: exit 130, a file ffprobe and ffmpeg read to its end with a
  duration that fits its frames, no temporary file left;
- a real catalog model (selfie, fetched by the tool if needed) once, on real photos;
- usage errors.

The known-answer test models (UNETSEG_TEST_MODELS: unet_rg, red = foreground; slow_rg, logit_rg's
answer slowly) keep it fast. The tool runs without GST_PLUGIN_PATH: the build tree's copy finds the build
tree's plugin by itself. Needs ffmpeg (scripts/setup.sh) and python3-opencv (to read PNGs).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

try:
    import cv2
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)

BUILD = os.environ.get("UNETSEG_BUILD_ROOT", "build")
TOOL = os.path.join(BUILD, "tools", "unetseg-remove")
MODELS = os.environ.get("UNETSEG_TEST_MODELS", "")
UNET = os.path.join(MODELS, "unet_rg.onnx")
SLOW = os.path.join(MODELS, "slow_rg.onnx")
SHARED = os.environ.get("UNETSEG_SHARED", "../shared")
CLIP = os.path.join(SHARED, "media", "asl", "thanks.mkv")  # 640x480, 30 fps, 51 frames
PHOTOS = os.path.join(SHARED, "data", "person-dev", "images")


def tool_env():
    """The environment without any GStreamer plugin path: the tool must find its plugin."""
    env = dict(os.environ)
    for var in ("GST_PLUGIN_PATH", "GST_PLUGIN_PATH_1_0"):
        env.pop(var, None)
    return env


def remove(*args, timeout=300):
    return subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=timeout,
                          env=tool_env())


def gst(*pipeline):
    r = subprocess.run(["gst-launch-1.0", "-q", *pipeline], capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        raise AssertionError("gst-launch-1.0 %s failed:\n%s%s" % (" ".join(pipeline), r.stdout,
                                                                  r.stderr))


def element_masks(path, model, width, height):
    """The element's own frame-size masks of an image or video (mode=mask), as N x H x W."""
    with tempfile.NamedTemporaryFile(suffix=".gray") as raw:
        gst("filesrc", "location=" + path, "!", "decodebin", "!", "videoconvert", "!",
            "video/x-raw,format=RGBA", "!", "unetseg", "model=" + model, "mode=mask", "!",
            "videoconvert", "!", "video/x-raw,format=GRAY8", "!", "filesink",
            "location=" + raw.name)
        data = np.fromfile(raw.name, dtype=np.uint8)
    stride = (width + 3) // 4 * 4
    return data.reshape(-1, height, stride)[:, :, :width]


def element_frames(path, model, width, height, *properties):
    """The element's own drawing (RGBx) of every frame of a video."""
    with tempfile.NamedTemporaryFile(suffix=".rgbx") as raw:
        gst("filesrc", "location=" + path, "!", "decodebin", "!", "videoconvert", "!",
            "video/x-raw,format=RGBx", "!", "unetseg", "model=" + model, *properties, "!",
            "filesink", "location=" + raw.name)
        data = np.fromfile(raw.name, dtype=np.uint8)
    return data.reshape(-1, height, width, 4)[..., :3]


def ffprobe(path):
    """{codec_name, pix_fmt, nb_read_frames, duration, ...} of the first video stream."""
    r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                        "-show_entries", "stream=codec_name,pix_fmt,width,height,nb_read_frames,"
                        "r_frame_rate:format=duration,format_name", "-of",
                        "default=noprint_wrappers=1", path],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("ffprobe %s: %s" % (path, r.stderr))
    info = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    info["stderr"] = r.stderr
    return info


def ffmpeg_frames(path, pix_fmt, width, height, channels):
    """Every frame ffmpeg decodes, converted to pix_fmt, as N x H x W x channels."""
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt",
                        pix_fmt, "-"], capture_output=True, timeout=120)
    if r.returncode != 0 or r.stderr:
        raise AssertionError("ffmpeg %s: %s" % (path, r.stderr.decode(errors="replace")))
    return np.frombuffer(r.stdout, dtype=np.uint8).reshape(-1, height, width, channels)


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.endswith(".part")]


def write_image(path, width, height, left_red=True):
    """Red on the left half and green on the right (or the other way round), edges on even
    pixels: unet_rg's exact answer is 1 on red, 0 on green."""
    img = np.zeros((height, width, 3), np.uint8)
    red, green = (0, 0, 255), (0, 255, 0)  # BGR
    img[:, :width // 2] = red if left_red else green
    img[:, width // 2:] = green if left_red else red
    img[height // 2:, :8] = (255, 0, 0)  # a blue patch: R = G, 0.5 exactly
    assert cv2.imwrite(path, img)
    return img


class Images(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.inputs = os.path.join(cls.tmp.name, "in")
        os.mkdir(cls.inputs)
        cls.images = {
            "a.png": write_image(os.path.join(cls.inputs, "a.png"), 80, 60),
            "b.png": write_image(os.path.join(cls.inputs, "b.png"), 96, 64, left_red=False),
            "c.jpg": write_image(os.path.join(cls.inputs, "c.jpg"), 64, 48),
        }
        with open(os.path.join(cls.inputs, "notes.txt"), "w") as f:
            f.write("not an image: ignored in a folder\n")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_folder_to_cutouts(self):
        out = os.path.join(self.tmp.name, "cutouts")
        r = remove("--model", UNET, self.inputs, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.path.basename(p) for p in r.stdout.split()),
                         ["a.png", "b.png", "c.png"])
        self.assertEqual(sorted(os.listdir(out)), ["a.png", "b.png", "c.png"])
        for name, img in self.images.items():
            cut = cv2.imread(os.path.join(out, os.path.splitext(name)[0] + ".png"),
                             cv2.IMREAD_UNCHANGED)
            h, w = img.shape[:2]
            self.assertEqual(cut.shape, (h, w, 4), name)
            mask = element_masks(os.path.join(self.inputs, name), UNET, w, h)[0]
            np.testing.assert_array_equal(cut[:, :, 3], mask, name)
            # The known answer: red is foreground, green background (away from the edge).
            red_left = name != "b.png"
            self.assertTrue((cut[:, 10:w // 2 - 4, 3] == (255 if red_left else 0)).all(), name)
            self.assertTrue((cut[:, w // 2 + 4:, 3] == (0 if red_left else 255)).all(), name)
            if name.endswith(".png"):  # lossless input: the colours are the input's
                np.testing.assert_array_equal(cut[:, :, :3], img, name)

    def test_one_image_to_a_mask_file(self):
        out = os.path.join(self.tmp.name, "mask-of-a.png")
        r = remove("--model", UNET, "--mask", os.path.join(self.inputs, "a.png"), "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), out)
        mask = cv2.imread(out, cv2.IMREAD_UNCHANGED)
        self.assertEqual(mask.shape, (60, 80))  # 8-bit grey
        np.testing.assert_array_equal(
            mask, element_masks(os.path.join(self.inputs, "a.png"), UNET, 80, 60)[0])

    def test_replace_with_a_colour_and_properties_as_flags(self):
        out = os.path.join(self.tmp.name, "replaced")
        r = remove("--model", UNET, "--mode", "replace", "--background-color", "0xff0000ff",
                   "--threshold=0.6", "--soft-mask", os.path.join(self.inputs, "a.png"),
                   "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        img = cv2.imread(os.path.join(out, "a.png"), cv2.IMREAD_UNCHANGED)
        self.assertEqual(img.shape, (60, 80, 3))
        self.assertTrue((img[:, 48:] == (255, 0, 0)).all())  # green became blue (BGR)
        self.assertTrue((img[:, 12:36] == (0, 0, 255)).all())  # red stays
        # threshold 0.6: the blue patch (0.5) is background too, so replaced by blue: unchanged.
        self.assertTrue((img[40:, :8] == (255, 0, 0)).all())

    def test_no_half_written_image_and_no_temporary_files(self):
        out = os.path.join(self.tmp.name, "cutouts2")
        r = remove("-q", "--model", UNET, self.inputs, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")  # --quiet
        self.assertEqual(leftovers(out), [])

    def test_sigint_mid_folder_leaves_whole_images_only(self):
        folder = os.path.join(self.tmp.name, "many")
        os.mkdir(folder)
        for i in range(6):
            write_image(os.path.join(folder, "%d.png" % i), 64, 48)
        out = os.path.join(self.tmp.name, "many-out")
        proc = subprocess.Popen([TOOL, "--model", SLOW, folder, "-o", out],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=tool_env())
        first = proc.stdout.readline()  # the first image is written: Ctrl-C
        proc.send_signal(signal.SIGINT)
        rest, stderr = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130, stderr)
        written = (first + rest).split()
        self.assertTrue(1 <= len(written) < 6, written)
        self.assertEqual(sorted(os.listdir(out)), sorted(os.path.basename(w) for w in written))
        for w in written:  # each whole
            self.assertEqual(cv2.imread(w, cv2.IMREAD_UNCHANGED).shape, (48, 64, 4), w)

    def test_real_catalog_model_on_photos(self):
        """selfie, the default model, fetched into the cache by the tool when it is not there."""
        photos = sorted(os.listdir(PHOTOS))[:3]
        folder = os.path.join(self.tmp.name, "photos")
        os.mkdir(folder)
        for p in photos:
            shutil.copy(os.path.join(PHOTOS, p), folder)
        out = os.path.join(self.tmp.name, "photo-cutouts")
        r = remove(folder, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        for p in photos:
            cut = cv2.imread(os.path.join(out, os.path.splitext(p)[0] + ".png"),
                             cv2.IMREAD_UNCHANGED)
            h, w = cut.shape[:2]
            self.assertEqual(cut.shape[2], 4)
            mask = element_masks(os.path.join(PHOTOS, p), "selfie", w, h)[0]
            np.testing.assert_array_equal(cut[:, :, 3], mask, p)
            share = (cut[:, :, 3] > 127).mean()
            self.assertTrue(0.05 < share < 0.95, "%s: %.2f of the photo is a person?" % (p, share))


class Videos(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.masks = element_masks(CLIP, UNET, 640, 480)
        assert len(cls.masks) == 51, len(cls.masks)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_alpha_video(self, path, codec, pix_fmt):
        info = ffprobe(path)
        self.assertEqual(info["codec_name"], codec)
        self.assertEqual(info["pix_fmt"], pix_fmt)  # an alpha format, as ffprobe names it
        self.assertEqual(int(info["nb_read_frames"]), 51)
        self.assertAlmostEqual(float(info["duration"]), 1.7, delta=0.05)
        frames = ffmpeg_frames(path, "rgba", 640, 480, 4)
        self.assertEqual(len(frames), 51)
        np.testing.assert_array_equal(frames[..., 3], self.masks)

    def test_alpha_mov(self):
        out = os.path.join(self.tmp.name, "mov")
        r = remove("--model", UNET, CLIP, "-o", out)  # a folder: thanks.mov by default
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), os.path.join(out, "thanks.mov"))
        self.check_alpha_video(os.path.join(out, "thanks.mov"), "png", "rgba")
        self.assertIn("51 frames", r.stderr)

    def test_alpha_mkv(self):
        out = os.path.join(self.tmp.name, "thanks-alpha.mkv")
        r = remove("--model", UNET, CLIP, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_alpha_video(out, "ffv1", "bgra")

    def test_blur_mp4(self):
        out = os.path.join(self.tmp.name, "blur.mp4")
        r = remove("--model", UNET, "--mode", "blur", "--blur-radius", "31", CLIP, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        info = ffprobe(out)
        self.assertEqual((info["codec_name"], info["pix_fmt"]), ("h264", "yuv420p"))
        self.assertEqual(int(info["nb_read_frames"]), 51)
        got = ffmpeg_frames(out, "rgb24", 640, 480, 3).astype(np.float32)
        blurred = element_frames(CLIP, UNET, 640, 480, "mode=blur", "blur-radius=31")
        original = element_frames(CLIP, UNET, 640, 480, "mode=none")
        to_blur = np.abs(got - blurred).mean()
        to_original = np.abs(got - original).mean()
        self.assertLess(to_blur, 2.5)  # H.264 at quantizer 20: close to the element's own
        self.assertLess(to_blur, to_original / 2)  # and not just the clip

    def test_sigint_mid_video_leaves_a_valid_file(self):
        out = os.path.join(self.tmp.name, "stopped")
        os.mkdir(out)
        target = os.path.join(out, "slow.mov")
        proc = subprocess.Popen([TOOL, "--model", SLOW, CLIP, "-o", target],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=tool_env())
        # Wait for a progress line (frames are being written: the .part file is there), then
        # Ctrl-C.
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        progress = re.compile(r"\d+% \d+/51 frames, [\d.]+ fps, ETA \d+:\d\d")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(progress.search(x) for x in lines):
            time.sleep(0.1)
        self.assertTrue(leftovers(out))
        proc.send_signal(signal.SIGINT)
        stdout = proc.stdout.read()
        proc.wait(timeout=60)
        reader.join(timeout=10)
        stderr = "".join(lines)
        self.assertEqual(proc.returncode, 130, stderr)
        self.assertIn("stopping", stderr)
        self.assertIn("stopped early", stderr)
        self.assertRegex(stderr, progress)
        self.assertEqual(stdout.strip(), target)
        self.assertEqual(os.listdir(out), ["slow.mov"])
        info = ffprobe(target)
        frames = int(info["nb_read_frames"])
        self.assertTrue(1 <= frames < 51, frames)
        # The moov atom is there and right: the duration fits the frames written.
        self.assertAlmostEqual(float(info["duration"]), frames / 30, delta=0.05)
        self.assertEqual(info["pix_fmt"], "rgba")
        decoded = ffmpeg_frames(target, "rgba", 640, 480, 4)  # to the end, with no error
        self.assertEqual(len(decoded), frames)
        # slow_rg gives logit_rg's answer, which the element gives quickly.
        masks = element_masks(CLIP, os.path.join(MODELS, "logit_rg.onnx"), 640, 480)
        np.testing.assert_array_equal(decoded[..., 3], masks[:frames])


class Usage(unittest.TestCase):
    def test_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            img = os.path.join(tmp, "x.png")
            write_image(img, 32, 32)
            cases = [
                (["--model", UNET, CLIP, "-o", os.path.join(tmp, "x.mp4")], "no alpha"),
                (["--model", UNET, img, "-o", os.path.join(tmp, "y.jpg")], "alpha channel"),
                (["--model", UNET, img, "-o", tmp + "/o", "--no-such-property", "1"],
                 "not a property of the unetseg element"),
                (["--model", UNET, img, "-o", tmp + "/o", "--threshold", "2"], "out of range"),
                (["--model", UNET, img, "-o", tmp + "/o", "--backend", "gpu"], "auto, cpu"),
                (["--model", UNET, img, "-o", tmp + "/o", "--mode", "none"], "--mode"),
                (["--model", UNET, img], "no output"),
                (["--model", UNET, os.path.join(tmp, "nope.png"), "-o", tmp], "no such file"),
                (["--model", UNET, img, "-o", tmp], "overwrite its input"),
            ]
            for args, message in cases:
                r = remove(*args)
                self.assertEqual(r.returncode, 2, (args, r.stderr))
                self.assertIn(message, r.stderr, args)

    def test_help_lists_the_element_properties(self):
        r = remove("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for flag in ("--threshold", "--soft-mask", "--background-location", "--blur-radius",
                     "--backend", "--mask", "--model"):
            self.assertIn(flag, r.stdout)

    def test_bad_model_fails_with_the_elements_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            img = os.path.join(tmp, "x.png")
            write_image(img, 32, 32)
            r = remove("--model", os.path.join(tmp, "missing.onnx"), img, "-o", tmp + "/o")
            self.assertEqual(r.returncode, 1)
            self.assertIn("missing.onnx", r.stderr)
            self.assertEqual(os.listdir(tmp + "/o"), [])


if __name__ == "__main__":
    unittest.main()
