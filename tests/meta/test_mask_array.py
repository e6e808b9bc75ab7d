#!/usr/bin/python3
"""gstunetseg.mask_array() (python/gstunetseg): the mask meta as a numpy array in one call.

- synthetic metas: stride padding, a rectangle inside a larger frame, the frame's size from a
  sample's caps, a buffer's GstVideoMeta or the rectangle, explicit sizes, semantic masks resized
  by nearest neighbour, no meta;
- the bilinear resize against OpenCV's (cv2.resize INTER_LINEAR) within 1 grey level;
- the element's own masks: at model size 64x64 for unet_rg, at frame size equal to what the
  element draws in mode=mask (thresholded at 0.5) but for a few edge pixels;
- examples/read_mask.py, which uses it, prints the expected mean foreground.

Run by meson with GI_TYPELIB_PATH/LD_LIBRARY_PATH at the meta library, PYTHONPATH at python/, the
plugin and the test models; exits 77 (skipped) where python3-gi or numpy is missing.
"""
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstApp", "1.0")
    gi.require_version("GstVideo", "1.0")
    gi.require_version("GstUnetseg", "1.0")
    from gi.repository import Gst, GstApp, GstUnetseg, GstVideo  # noqa: F401
    import numpy as np

    import gstunetseg
except (ImportError, ValueError) as e:
    print(f"skipped: {e}")
    sys.exit(77)

MODELS = os.environ.get("UNETSEG_TEST_MODELS", "")
SOURCE = os.environ.get("UNETSEG_SOURCE_ROOT", ".")


def make_mask(width, height, stride, pixel):
    rows = bytearray(b"\xee" * (stride * height))
    for j in range(height):
        for i in range(width):
            rows[j * stride + i] = pixel(i, j)
    mask = Gst.Buffer.new_wrapped(bytes(rows))
    vmeta = GstVideo.buffer_add_video_meta(mask, GstVideo.VideoFrameFlags.NONE,
                                           GstVideo.VideoFormat.GRAY8, width, height)
    assert vmeta.stride[0] == stride, vmeta.stride[0]
    return mask


def frame_with(mask, kind, x, y, w, h, frame_w=None, frame_h=None, video_meta=False):
    frame = Gst.Buffer.new_allocate(None, 16, None)
    if video_meta:
        GstVideo.buffer_add_video_meta(frame, GstVideo.VideoFrameFlags.NONE,
                                       GstVideo.VideoFormat.GRAY8, frame_w, frame_h)
    meta = GstUnetseg.buffer_add_unetseg_mask_meta(frame, mask, kind, x, y, w, h)
    assert meta is not None
    return frame, meta



# cv2.resize (INTER_LINEAR) of DIR/mask.npy to each size, into DIR/0.npy, DIR/1.npy, ...
CV2_RESIZE = """
import ast, os, sys
import cv2, numpy as np
d = sys.argv[1]
mask = np.load(os.path.join(d, "mask.npy"))
for i, (w, h) in enumerate(ast.literal_eval(sys.argv[2])):
    np.save(os.path.join(d, "%d.npy" % i), cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR))
"""

class Synthetic(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Gst.init(None)

    def test_model_size_honours_the_stride(self):
        # 10x6 GRAY8 rows are padded to 12 bytes: a reader ignoring the stride gets 0xee.
        frame, _ = frame_with(make_mask(10, 6, 12, lambda i, j: j * 16 + i),
                              GstUnetseg.MaskType.FOREGROUND, 0, 0, 20, 12)
        m = gstunetseg.mask_array(frame)
        self.assertEqual((m.shape, m.dtype), ((6, 10), np.uint8))
        np.testing.assert_array_equal(m, np.arange(6)[:, None] * 16 + np.arange(10)[None, :])
        self.assertTrue(m.flags.writeable)  # a copy, not a view of the mapped buffer

    def test_no_meta(self):
        self.assertIsNone(gstunetseg.mask_array(Gst.Buffer.new_allocate(None, 16, None)))
        self.assertEqual(gstunetseg.labels(Gst.Buffer.new_allocate(None, 16, None)), {})

    def test_frame_size_places_the_rectangle(self):
        # A 4x2 mask stretched 2x over (2, 1) 8x4 of a frame: from the buffer's video meta.
        frame, _ = frame_with(make_mask(4, 2, 4, lambda i, j: 200),
                              GstUnetseg.MaskType.FOREGROUND, 2, 1, 8, 4, 12, 6, video_meta=True)
        m = gstunetseg.mask_array(frame, "frame")
        self.assertEqual(m.shape, (6, 12))
        expected = np.zeros((6, 12), np.uint8)
        expected[1:5, 2:10] = 200
        np.testing.assert_array_equal(m, expected)
        # The same from a sample's caps, and with frame_size given; clipped to a smaller frame.
        caps = Gst.Caps.from_string("video/x-raw,format=GRAY8,width=12,height=6")
        np.testing.assert_array_equal(
            gstunetseg.mask_array(Gst.Sample.new(frame, caps, None, None), size="frame"), expected)
        np.testing.assert_array_equal(
            gstunetseg.mask_array(frame, "frame", frame_size=(6, 3)), expected[:3, :6])

    def test_frame_size_from_the_rectangle(self):
        frame, _ = frame_with(make_mask(2, 2, 4, lambda i, j: 255 * i),
                              GstUnetseg.MaskType.FOREGROUND, 0, 0, 8, 4)
        m = gstunetseg.mask_array(frame, "frame")
        self.assertEqual(m.shape, (4, 8))
        # Bilinear, pixel centres aligned: 0 on the left quarter, 255 on the right quarter.
        self.assertTrue((m[:, :2] == 0).all() and (m[:, 6:] == 255).all())
        self.assertTrue((np.diff(m[0].astype(int)) >= 0).all())

    def test_semantic_masks_are_resized_by_nearest(self):
        frame, _ = frame_with(make_mask(2, 2, 4, lambda i, j: 1 + 8 * ((i + j) % 2)),
                              GstUnetseg.MaskType.SEMANTIC, 0, 0, 4, 4)
        m = gstunetseg.mask_array(frame, (4, 4))
        np.testing.assert_array_equal(m, [[1, 1, 9, 9], [1, 1, 9, 9], [9, 9, 1, 1], [9, 9, 1, 1]])
        # Bilinear would blend classes 1 and 9 into 5, a class that is not there.
        soft = gstunetseg.mask_array(frame, (8, 8), interpolation="bilinear")
        self.assertIn(5, soft)

    def test_bilinear_is_opencvs(self):
        # cv2 (Debian's OpenCV 4.6) runs in a child process: in this one, a plugin built against
        # OpenCV 4.10 may be loaded, and two OpenCV dnn libraries in one process abort on their
        # protobuf descriptors ("File already exists in database: opencv-caffe.proto").
        rng = np.random.default_rng(7)
        mask = rng.integers(0, 256, (32, 40), dtype=np.uint8)
        sizes = ((640, 480), (41, 33), (20, 16), (97, 13))
        with tempfile.TemporaryDirectory() as tmp:
            np.save(os.path.join(tmp, "mask.npy"), mask)
            subprocess.run([sys.executable, "-c", CV2_RESIZE, tmp, repr(sizes)], check=True)
            for i, (w, h) in enumerate(sizes):
                ours = gstunetseg.resize(mask, w, h).astype(int)
                theirs = np.load(os.path.join(tmp, "%d.npy" % i)).astype(int)
                self.assertEqual(theirs.shape, (h, w))
                self.assertLessEqual(np.abs(ours - theirs).max(), 1, (w, h))

    def test_bad_arguments(self):
        frame, _ = frame_with(make_mask(2, 2, 4, lambda i, j: 0),
                              GstUnetseg.MaskType.FOREGROUND, 0, 0, 4, 4)
        with self.assertRaises(ValueError):
            gstunetseg.mask_array(frame, "screen")
        with self.assertRaises(ValueError):
            gstunetseg.mask_array(frame, (4, 4), interpolation="cubic")
        with self.assertRaises(TypeError):
            gstunetseg.mask_array(b"not a buffer")


class FromTheElement(unittest.TestCase):
    """A frame red on the left, green on the right, 160x60, through unet_rg (red = foreground):
    the mask is 64x64 at model size, the left half at frame size."""

    @classmethod
    def setUpClass(cls):
        Gst.init(None)
        cls.model = os.path.join(MODELS, "unet_rg.onnx")
        pipeline = Gst.parse_launch(
            "videotestsrc num-buffers=2 pattern=solid-color foreground-color=0xffff0000 "
            "! video/x-raw,width=80,height=60 ! videobox right=-80 fill=green ! videoconvert "
            "! unetseg model=\"%s\" mode=mask ! video/x-raw,format=RGBx "
            "! appsink name=sink sync=false" % cls.model)
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        cls.sample = sink.try_pull_sample(30 * Gst.SECOND)
        pipeline.set_state(Gst.State.NULL)
        assert cls.sample is not None, "no frame from the element"

    def test_model_size(self):
        m = gstunetseg.mask_array(self.sample)
        self.assertEqual(m.shape, (64, 64))
        self.assertTrue((m[:, :28] == 255).all() and (m[:, 36:] == 0).all())
        self.assertEqual(gstunetseg.labels(self.sample), {0: "background", 1: "foreground"})

    def test_frame_size_is_what_the_element_draws(self):
        m = gstunetseg.mask_array(self.sample, size="frame")
        self.assertEqual(m.shape, (60, 160))
        buf = self.sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        drawn = np.frombuffer(info.data, np.uint8).reshape(60, 160, 4)[:, :, 0]
        buf.unmap(info)
        differ = ((m >= 128) * 255 != drawn).sum()
        self.assertLessEqual(differ, 60 * 2, "more than the edge column differs")
        self.assertTrue((m[:, :70] == 255).all() and (m[:, 90:] == 0).all())


class Example(unittest.TestCase):
    def test_read_mask_py(self):
        model = os.path.join(MODELS, "unet_rg.onnx")
        r = subprocess.run(
            ["/usr/bin/python3", os.path.join(SOURCE, "examples", "read_mask.py"),
             "videotestsrc", "num-buffers=3", "pattern=solid-color",
             "foreground-color=0xffff0000", "!", "video/x-raw,width=80,height=60", "!",
             "videobox", "right=-80", "fill=green", "!", "videoconvert", "!", "unetseg",
             "model=" + model, "mode=none", "!", "appsink", "name=sink"],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[-1], "3 frames")
        for line in lines[:-1]:
            self.assertIn("mask 64x64 rect 0,0 160x60 type foreground", line)
            # Half the frame is red: a mean foreground of one half.
            self.assertRegex(line, r"mean-foreground 0\.(49\d|50\d) ")


if __name__ == "__main__":
    unittest.main()
