#!/usr/bin/python3
"""read_mask.py: read the masks unetseg attaches to video buffers, from Python.

    examples/read_mask.py [PIPELINE...]

PIPELINE is gst-launch-1.0 syntax ending in "appsink name=sink"; the default is
    videotestsrc num-buffers=5 ! videoconvert ! unetseg model=MODEL mode=none ! appsink name=sink
with MODEL from $UNETSEG_MODEL, else sinet as scripts/fetch-model.sh caches it.

Needs Debian's python3-gi (the system python3) and the GstUnetseg-1.0 typelib. From a build tree:
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


def time_str(t):
    """A GstClockTime as GST_TIME_FORMAT writes it."""
    if t == Gst.CLOCK_TIME_NONE:
        return "99:99:99.999999999"
    s, ns = divmod(t, Gst.SECOND)
    return "%d:%02d:%02d.%09d" % (s // 3600, s // 60 % 60, s % 60, ns)


def mean_foreground(meta):
    """Mean alpha / 255 of a foreground mask; share of non-background pixels of a semantic one."""
    vmeta = GstVideo.buffer_get_video_meta(meta.mask)
    ok, info = meta.mask.map(Gst.MapFlags.READ)
    if not ok:
        return -1.0
    try:
        data, stride = info.data, vmeta.stride[0]
        rows = [data[y * stride:y * stride + vmeta.width] for y in range(vmeta.height)]
        if meta.type == GstUnetseg.MaskType.FOREGROUND:
            total = sum(sum(row) for row in rows) / 255.0
        else:
            total = sum(len(row) - row.count(0) for row in rows)
    finally:
        meta.mask.unmap(info)
    return total / (vmeta.width * vmeta.height)


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
        meta.inference_time / 1e6, mean_foreground(meta))
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
