#!/usr/bin/python3
"""rtsp_server.py: serve a camera or a looping file over RTSP with the background blurred (or
replaced, or cut out), with gst-rtsp-server and the unetseg element.

    examples/rtsp_server.py [OPTIONS] FILE            a file, looped for as long as clients watch
    examples/rtsp_server.py [OPTIONS] --camera /dev/video0

    --model M            catalog name or .onnx (default selfie; fetch it first:
                         scripts/fetch-model.sh selfie, or unetseg-models fetch selfie)
    --mode MODE          blur (default), replace, overlay, mask, none
    --live auto|on|off   the element's live property (default: on for a file, auto for a camera)
    --port N             RTSP port (default 8554; 0: any free port)
    --address A          address to listen on (default 127.0.0.1; 0.0.0.0 for the network)
    --mount /PATH        (default /unetseg)
    PROPERTY=VALUE       more unetseg properties: blur-radius=41 smoothing=0.7 ...

It prints "serving rtsp://ADDRESS:PORT/PATH" once it listens; watch with any RTSP client:
    gst-launch-1.0 rtspsrc location=rtsp://127.0.0.1:8554/unetseg ! decodebin ! autovideosink
    ffplay -rtsp_transport tcp rtsp://127.0.0.1:8554/unetseg
Every client sees the same stream (a shared media): the model runs once however many watch.
Ctrl-C stops it.

live=on for a file: a camera is live, so unetseg (live=auto) never makes a frame wait for the
model, it leaves at once with the newest mask, and the stream keeps the camera's rate whatever the
model costs. A file is not live: with live=auto (= off) each frame waits for its own mask, which
holds the file's rate only while the model (and the encoder) take less than a frame period; a
slower model slows the stream down to the model's rate, and clients see it stutter. A server that
must hold the rate, fed by a file, needs live=on: this example sets it for files unless told
otherwise (--live off gives every frame its own mask instead, at the model's pace).

Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0, and the plugin on GST_PLUGIN_PATH
(pipelines/rtsp-serve.sh sets it up from the build tree).
"""
import os
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # noqa: E402,F401

PROG = "rtsp_server.py"
# ultrafast + zerolatency: what keeps real time on 2 cores beside the model (pipelines/README.md);
# key-int-max=30 and config-interval=1: a client joining late starts within a second.
ENCODER = ("videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency "
           "speed-preset=ultrafast key-int-max=30 ! rtph264pay name=pay0 pt=96 config-interval=1")


def quote(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


class FileLoop:
    """Feeds a media's appsrc with the file's decoded frames, over and over, timestamps running on
    across the loops: a separate pipeline decodes (filesrc ! decodebin ! appsink) and seeks back to
    the start at each end. The appsrc blocks when four frames are queued, so the media's sinks,
    which play in step with the clock, set the pace."""

    def __init__(self, path, appsrc):
        self.path, self.appsrc = path, appsrc
        self.stopping = False
        self.decoder = Gst.parse_launch(
            "filesrc name=src ! decodebin ! videoconvert ! appsink name=sink sync=false "
            "max-buffers=4")
        self.decoder.get_by_name("src").set_property("location", path)
        self.sink = self.decoder.get_by_name("sink")
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.decoder.set_state(Gst.State.PLAYING)
        sample = self.sink.try_pull_sample(30 * Gst.SECOND)
        if sample is None:
            raise RuntimeError("%s: no video in it" % self.path)
        self.appsrc.set_property("caps", sample.get_caps())
        self.first = sample
        self.thread.start()

    def run(self):
        offset, end = 0, 0
        sample = self.first
        while not self.stopping:
            if sample is None:
                if not self.sink.is_eos():
                    sample = self.sink.try_pull_sample(Gst.SECOND // 10)
                    continue
                # The end of the file: from the start again, later by the file's length.
                offset = end
                self.decoder.seek_simple(Gst.Format.TIME,
                                         Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE, 0)
                sample = self.sink.try_pull_sample(5 * Gst.SECOND)
                if sample is None:
                    break
            buffer = sample.get_buffer().copy()
            if buffer.pts != Gst.CLOCK_TIME_NONE:
                buffer.pts += offset
                duration = buffer.duration if buffer.duration != Gst.CLOCK_TIME_NONE else 0
                end = max(end, buffer.pts + duration)
            buffer.dts = Gst.CLOCK_TIME_NONE
            if self.appsrc.push_buffer(buffer) != Gst.FlowReturn.OK:
                break  # the media is going away
            sample = self.sink.try_pull_sample(Gst.SECOND // 10)

    def stop(self):
        self.stopping = True
        self.decoder.set_state(Gst.State.NULL)


def main(argv):
    args = list(argv)
    opts = {"model": "selfie", "mode": "blur", "live": None, "port": "8554",
            "address": "127.0.0.1", "mount": "/unetseg", "camera": None}
    props, files = [], []
    while args:
        a = args.pop(0)
        if a in ("-h", "--help"):
            print(__doc__)
            return 0
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if name not in opts:
                print("%s: unknown option %s" % (PROG, a), file=sys.stderr)
                return 2
            if not eq:
                if not args:
                    print("%s: %s needs a value" % (PROG, a), file=sys.stderr)
                    return 2
                value = args.pop(0)
            opts[name] = value
        elif a.startswith("live="):
            opts["live"] = a[5:]
        elif "=" in a:
            props.append(a)
        else:
            files.append(a)
    if (len(files) != 1) == (opts["camera"] is None) or len(files) > 1:
        print("%s: give one FILE or --camera DEVICE (see --help)" % PROG, file=sys.stderr)
        return 2

    Gst.init(None)
    if Gst.ElementFactory.find("unetseg") is None:
        print("%s: no unetseg element: set GST_PLUGIN_PATH to the plugin's folder (the build's "
              "gst-plugin/, or PREFIX/LIBDIR/gstreamer-1.0)" % PROG, file=sys.stderr)
        return 2
    live = opts["live"] or ("auto" if opts["camera"] else "on")
    unetseg = "unetseg model=%s mode=%s live=%s %s" % (quote(opts["model"]), opts["mode"], live,
                                                      " ".join(props))
    if opts["camera"]:
        source = "v4l2src device=%s ! videoconvert" % quote(opts["camera"])
    else:
        if not os.path.isfile(files[0]):
            print("%s: no such file: %s" % (PROG, files[0]), file=sys.stderr)
            return 2
        source = "appsrc name=src format=time is-live=false block=true max-buffers=4 ! videoconvert"
    launch = "( %s ! %s ! %s )" % (source, unetseg, ENCODER)

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    loops = {}

    def on_media_configure(factory, media):
        if opts["camera"]:
            return
        loop = FileLoop(files[0], media.get_element().get_by_name("src"))
        loops[media] = loop
        media.connect("unprepared", lambda m: loops.pop(m).stop())
        loop.start()

    factory.connect("media-configure", on_media_configure)

    server = GstRtspServer.RTSPServer()
    server.set_address(opts["address"])
    server.set_service(opts["port"])
    server.get_mount_points().add_factory(opts["mount"], factory)
    if server.attach(None) == 0:
        print("%s: cannot listen on %s port %s" % (PROG, opts["address"], opts["port"]),
              file=sys.stderr)
        return 1
    print("serving rtsp://%s:%d%s (%s, %s, live=%s)" % (
        opts["address"], server.get_bound_port(), opts["mount"],
        opts["camera"] or files[0], os.path.basename(opts["model"]), live), flush=True)

    mainloop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, mainloop.quit)
    mainloop.run()
    for loop in list(loops.values()):
        loop.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
