#!/usr/bin/python3
"""The mask meta read and written from Python through GObject introspection (GstUnetseg-1.0).

Run by meson with GI_TYPELIB_PATH and LD_LIBRARY_PATH pointing at the meta library's build
directory; exits 77 (skipped) where python3-gi is missing.
"""
import sys
import unittest

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstVideo", "1.0")
    gi.require_version("GstUnetseg", "1.0")
    from gi.repository import GLib, Gst, GstUnetseg, GstVideo
except (ImportError, ValueError) as e:
    print(f"skipped: {e}")
    sys.exit(77)

MASK_W, MASK_H = 10, 6
# GRAY8 rows are padded to 4 bytes: a reader that ignores the stride reads the wrong pixels.
MASK_STRIDE = 12


def mask_pixel(i, j):
    return j * 16 + i


def make_mask():
    rows = bytearray(b"\xee" * (MASK_STRIDE * MASK_H))
    for j in range(MASK_H):
        for i in range(MASK_W):
            rows[j * MASK_STRIDE + i] = mask_pixel(i, j)
    mask = Gst.Buffer.new_wrapped(bytes(rows))
    vmeta = GstVideo.buffer_add_video_meta(
        mask, GstVideo.VideoFrameFlags.NONE, GstVideo.VideoFormat.GRAY8, MASK_W, MASK_H
    )
    assert vmeta.stride[0] == MASK_STRIDE
    return mask


def make_frame_with_meta():
    frame = Gst.Buffer.new_allocate(None, 320 * 240 * 3, None)
    meta = GstUnetseg.buffer_add_unetseg_mask_meta(
        frame, make_mask(), GstUnetseg.MaskType.SEMANTIC, 40, 20, 160, 120
    )
    assert meta is not None
    return frame, meta


class MaskMetaFromPython(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Gst.init(None)

    def test_add_and_get(self):
        frame = Gst.Buffer.new_allocate(None, 320 * 240 * 3, None)
        self.assertIsNone(GstUnetseg.buffer_get_unetseg_mask_meta(frame))
        frame, _ = make_frame_with_meta()

        meta = GstUnetseg.buffer_get_unetseg_mask_meta(frame)
        self.assertIsNotNone(meta)
        self.assertEqual(meta.type, GstUnetseg.MaskType.SEMANTIC)
        self.assertEqual((meta.x, meta.y, meta.width, meta.height), (40, 20, 160, 120))
        self.assertEqual(meta.n_regions, 0)
        self.assertEqual(meta.source_pts, Gst.CLOCK_TIME_NONE)
        self.assertEqual(meta.inference_time, Gst.CLOCK_TIME_NONE)
        self.assertEqual(meta.model, 0)
        self.assertIsNone(meta.get_model())

        # The plain fields are writable from Python, as from C.
        meta.source_pts = 5 * Gst.SECOND
        meta.inference_time = 12 * Gst.MSECOND
        again = GstUnetseg.buffer_get_unetseg_mask_meta(frame)
        self.assertEqual(again.source_pts, 5 * Gst.SECOND)
        self.assertEqual(again.inference_time, 12 * Gst.MSECOND)

    def test_regions_labels_and_model(self):
        frame, meta = make_frame_with_meta()
        meta.set_regions([0, 1, 7], ["background", None, "person"])
        meta.set_model("u2net")

        meta = GstUnetseg.buffer_get_unetseg_mask_meta(frame)
        self.assertEqual(meta.n_regions, 3)
        self.assertEqual(list(meta.region_ids), [0, 1, 7])
        self.assertEqual(
            [GLib.quark_to_string(q) for q in meta.labels], ["background", None, "person"]
        )
        self.assertEqual(meta.get_label(0), "background")
        self.assertIsNone(meta.get_label(1))
        self.assertEqual(meta.get_label(7), "person")
        self.assertIsNone(meta.get_label(2))
        self.assertEqual(meta.get_model(), "u2net")
        self.assertEqual(GLib.quark_to_string(meta.model), "u2net")

        meta.set_regions([], None)
        self.assertEqual(meta.n_regions, 0)
        self.assertIsNone(meta.get_label(0))

    def test_mask_pixels(self):
        frame, _ = make_frame_with_meta()
        meta = GstUnetseg.buffer_get_unetseg_mask_meta(frame)

        # map() gives the mask's geometry (its pixels are not reachable through a Python
        # GstVideoFrame, whose plane pointers PyGObject cannot read) ...
        ok, vframe = meta.map()
        self.assertTrue(ok)
        self.assertEqual(vframe.info.finfo.format, GstVideo.VideoFormat.GRAY8)
        self.assertEqual((vframe.info.width, vframe.info.height), (MASK_W, MASK_H))
        self.assertEqual(vframe.info.stride[0], MASK_STRIDE)
        vframe.unmap()

        # ... and the pixels are read from the mask buffer with the stride of its GstVideoMeta.
        stride = GstVideo.buffer_get_video_meta(meta.mask).stride[0]
        ok, info = meta.mask.map(Gst.MapFlags.READ)
        self.assertTrue(ok)
        data = bytes(info.data)
        meta.mask.unmap(info)
        for j in range(MASK_H):
            self.assertEqual(
                list(data[j * stride : j * stride + MASK_W]),
                [mask_pixel(i, j) for i in range(MASK_W)],
            )

    def test_copy_shares_mask(self):
        frame, meta = make_frame_with_meta()
        meta.set_regions([0, 1], ["background", "person"])
        copy = frame.copy()

        cmeta = GstUnetseg.buffer_get_unetseg_mask_meta(copy)
        self.assertIsNotNone(cmeta)
        self.assertEqual((cmeta.x, cmeta.y, cmeta.width, cmeta.height), (40, 20, 160, 120))
        self.assertEqual(cmeta.get_label(1), "person")
        self.assertEqual(cmeta.mask, meta.mask)  # the same GstBuffer (compared by pointer)


if __name__ == "__main__":
    unittest.main()
