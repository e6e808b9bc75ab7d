#!/usr/bin/python3
"""read_mask.py: read the masks unetseg attaches to video buffers, from Python.

    examples/read_mask.py [PIPELINE...]

PIPELINE is gst-launch-1.0 syntax ending in "appsink name=sink"; the default is
    videotestsrc num-buffers=5 ! videoconvert ! unetseg model=MODEL mode=none ! appsink name=sink
with MODEL from $UNETSEG_MODEL, else sinet as `unetseg-models fetch sinet` caches it.

Needs Debian's python3-gi and python3-numpy (the system python3), the GstUnetseg-1.0 typelib and
the gstunetseg module (python/ in the source tree, where this finds it by itself; installed by
meson install beside python3's packages, see python/meson.build). Installed under
/usr/local (after ldconfig), the loader finds the library by itself, but Debian 12's GI reads
typelibs from /usr/lib only: GI_TYPELIB_PATH=/usr/local/LIBDIR/girepository-1.0, and
GST_PLUGIN_PATH=/usr/local/LIBDIR/gstreamer-1.0 (LIBDIR is lib/x86_64-linux-gnu on Debian);
installed in another PREFIX:
    GST_PLUGIN_PATH=PREFIX/LIBDIR/gstreamer-1.0 GI_TYPELIB_PATH=PREFIX/LIBDIR/girepository-1.0 \\
    LD_LIBRARY_PATH=PREFIX/LIBDIR PYTHONPATH=PREFIX/lib/python3.11/dist-packages \\
    examples/read_mask.py
From a build tree:
    GI_TYPELIB_PATH=build/gst-plugin/meta LD_LIBRARY_PATH=build/gst-plugin/meta \\
    GST_PLUGIN_PATH=build/gst-plugin examples/read_mask.py
"""
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
gi.require_version("GstUnetseg", "1.0")
from gi.repository import GLib, Gst, GstApp, GstUnetseg, GstVideo  # noqa: E402

try:
    import gstunetseg  # the mask as a numpy array: installed beside python3's packages
except ImportError:  # a source tree: python/ beside examples/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import gstunetseg


def time_str(t):
    """A GstClockTime as GST_TIME_FORMAT writes it."""
    if t == Gst.CLOCK_TIME_NONE:
        return "99:99:99.999999999"
    s, ns = divmod(t, Gst.SECOND)
    return "%d:%02d:%02d.%09d" % (s // 3600, s // 60 % 60, s % 60, ns)


def mean_foreground(buffer, meta):
    """Mean alpha / 255 of a foreground mask; share of non-background pixels of a semantic one."""
    mask = gstunetseg.mask_array(buffer)  # uint8 numpy array at the model's resolution
    # gstunetseg.mask_array(buffer, size="frame") would give it stretched over the frame.
    if meta.type == GstUnetseg.MaskType.FOREGROUND:
        return float(mask.mean()) / 255.0
    return float((mask != 0).mean())


def print_frame(buffer):
    line = "pts %s" % time_str(buffer.pts)
    meta = GstUnetseg.buffer_get_unetseg_mask_meta(buffer)
    if meta is None:
        print(line + ": no mask meta")
        return
    vmeta = GstVideo.buffer_get_video_meta(meta.mask)
    labels = ",".join("%d=%s" % (i, meta.get_label(i)) for i in range(meta.n_regions))
    line += " source_pts %s model %s mask %dx%d rect %d,%d %dx%d type %s labels %s" % (
        time_str(meta.source_pts), meta.get_model(), vmeta.width, vmeta.height,
        meta.x, meta.y, meta.width, meta.height, meta.type.value_nick, labels)
    line += " inference %.1f ms mean-foreground %.3f" % (
        meta.inference_time / 1e6, mean_foreground(buffer, meta))
    # The "foreground" region of interest: the mask's bounding box in frame pixels, absent when
    # the mask is empty. Python cannot walk a buffer's metas by type, so look it up by its id
    # (0, as gst_buffer_add_video_region_of_interest_meta() leaves it) and check its type.
    roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buffer, 0)
    if roi is not None and GLib.quark_to_string(roi.roi_type) == "foreground":
        line += " roi foreground %d,%d %dx%d" % (roi.x, roi.y, roi.w, roi.h)
    else:
        line += " roi none"
    print(line)


def main(argv):
    Gst.init(None)
    if len(argv) > 1:
        description = " ".join(argv[1:])
    else:
        model = os.environ.get("UNETSEG_MODEL") or os.path.join(
            GLib.get_user_cache_dir(), "unetseg", "models", "sinet.onnx")
        description = ("videotestsrc num-buffers=5 ! videoconvert ! unetseg model=\"%s\" "
                       "mode=none ! appsink name=sink" % model)
    try:
        pipeline = Gst.parse_launch(description)
    except GLib.Error as e:
        print("read_mask.py: bad pipeline: %s" % e.message, file=sys.stderr)
        return 2
    sink = pipeline.get_by_name("sink")
    if not isinstance(sink, GstApp.AppSink):
        print('read_mask.py: the pipeline needs an "appsink name=sink"', file=sys.stderr)
        return 2
    sink.set_property("sync", False)

    bus = pipeline.get_bus()
    status, frames = 0, 0
    pipeline.set_state(Gst.State.PLAYING)
    while True:
        sample = sink.try_pull_sample(Gst.SECOND // 10)
        if sample is not None:
            print_frame(sample.get_buffer())
            frames += 1
            continue
        if sink.is_eos():
            break
        msg = bus.pop_filtered(Gst.MessageType.ERROR)
        if msg is not None:
            err, debug = msg.parse_error()
            print("read_mask.py: error from %s: %s\n%s" % (msg.src.get_name(), err.message,
                                                          debug or ""), file=sys.stderr)
            status = 1
            break
    print("%d frames" % frames)
    pipeline.set_state(Gst.State.NULL)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
