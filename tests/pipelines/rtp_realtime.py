#!/usr/bin/python3
"""Does pipelines/rtp-send.sh keep real time? Its chain (unetseg mode=blur, then its x264enc, taken
from the script itself, rtph264pay, udpsink) fed by a live source for SECONDS, counting frames in
(what the source offered) and out (what the encoder delivered in that time).

    tests/pipelines/rtp_realtime.py [--seconds 10] [--model selfie] [--encoder "x264enc ..."]
                                    [--size 640x480] [--fps 30]

The live source behaves as a camera does: it offers a frame every 1/FPS s whether or not the
pipeline is ready, and a frame the pipeline is not ready for is lost (appsrc is-live=true into a
leaky queue of two frames). Its pictures are the webcam-like ASL clips of ../shared/media/asl
(natural content, so that the encoder works as hard as on a camera), looped. unetseg sees a live
source, so live=auto runs it live (the video never waits for the model).

Prints one line: "in N out M lost L (P% out) model MODEL encoder ..." and exits 0; the caller
judges (tests/pipelines/test_pipelines.py wants 90% out). Needs GST_PLUGIN_PATH at the plugin.
"""
import argparse
import os
import re
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("UNETSEG_SOURCE_ROOT", os.path.join(HERE, "..", ".."))
SHARED = os.environ.get("UNETSEG_SHARED", os.path.join(SOURCE_ROOT, "..", "shared"))


def script_encoder():
    """The x264enc element and properties pipelines/rtp-send.sh uses."""
    with open(os.path.join(SOURCE_ROOT, "pipelines", "rtp-send.sh")) as f:
        text = f.read()
    m = re.search(r"^\s*!?\s*(x264enc\b[^!\\\n]*)", text, re.M)
    if not m:
        sys.exit("rtp_realtime.py: no x264enc in pipelines/rtp-send.sh")
    return m.group(1).strip()


def load_frames(width, height, limit=200):
    """Decoded frames (I420, as a webcam gives) of the ASL clips, one after the other."""
    frames, caps = [], None
    folder = os.path.join(SHARED, "media", "asl")
    for name in sorted(os.listdir(folder)):
        pipeline = Gst.parse_launch(
            "filesrc name=src ! decodebin ! videoconvert ! videoscale "
            "! video/x-raw,format=I420,width=%d,height=%d,pixel-aspect-ratio=1/1 "
            "! appsink name=sink sync=false" % (width, height))
        pipeline.get_by_name("src").set_property("location", os.path.join(folder, name))
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        while len(frames) < limit:
            sample = sink.try_pull_sample(10 * Gst.SECOND)
            if sample is None:
                break
            caps = sample.get_caps()
            frames.append(sample.get_buffer())
        pipeline.set_state(Gst.State.NULL)
        if len(frames) >= limit:
            break
    if not frames:
        sys.exit("rtp_realtime.py: no frames from %s" % folder)
    return frames, caps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--model", default="selfie")
    ap.add_argument("--encoder", default=None, help="default: rtp-send.sh's")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--port", type=int, default=5600)
    args = ap.parse_args()
    encoder = args.encoder or script_encoder()
    width, height = (int(v) for v in args.size.split("x"))

    Gst.init(None)
    frames, caps = load_frames(width, height)
    s = caps.get_structure(0)
    caps = Gst.Caps.from_string(
        "video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1,pixel-aspect-ratio=1/1%s" % (
            width, height, args.fps, ",colorimetry=" + s.get_string("colorimetry")
            if s.get_string("colorimetry") else ""))
    pipeline = Gst.parse_launch(
        "appsrc name=src is-live=true format=time do-timestamp=true "
        "! queue name=camera leaky=downstream max-size-buffers=2 max-size-bytes=0 max-size-time=0 "
        "! videoconvert ! unetseg name=seg model=\"%s\" mode=blur ! videoconvert "
        "! video/x-raw,format=I420 ! %s name=enc ! rtph264pay config-interval=1 pt=96 "
        "! udpsink host=127.0.0.1 port=%d" % (args.model, encoder, args.port))
    src = pipeline.get_by_name("src")
    src.set_property("caps", caps)
    counts = {"out": 0}
    lock = threading.Lock()

    def count_out(pad, info):
        with lock:
            counts["out"] += 1
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("enc").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER,
                                                                 count_out)
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    # Let the model load and the first frame through before the clock starts counting.
    src.push_buffer(frames[0].copy())
    deadline = time.monotonic() + 60
    while counts["out"] == 0 and time.monotonic() < deadline:
        msg = bus.timed_pop_filtered(Gst.SECOND // 20, Gst.MessageType.ERROR)
        if msg is not None:
            sys.exit("rtp_realtime.py: %s" % msg.parse_error()[0].message)
    with lock:
        counts["out"] = 0
    offered = int(args.seconds * args.fps)
    start = time.monotonic()
    for i in range(offered):
        delay = start + i / args.fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        src.push_buffer(frames[(i + 1) % len(frames)].copy())
    # The frames of the last frame period may still be on their way: a period more.
    time.sleep(max(0.0, start + args.seconds + 1.0 / args.fps - time.monotonic()))
    with lock:
        out = counts["out"]
    pipeline.set_state(Gst.State.NULL)
    lost = offered - out
    print("in %d out %d lost %d (%.1f%% out) model %s encoder %s" % (
        offered, out, lost, 100.0 * out / offered, args.model, encoder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
