#!/usr/bin/python3
"""The scripts of pipelines/ as a user runs them, with the default catalog model (selfie, fetched by
common.sh through scripts/fetch-model.sh when it is not cached), each output read back with
Debian's ffprobe/ffmpeg:

- file-blur-mp4.sh and alpha-compositor.sh write an H.264 4:2:0 mp4 of every frame, printing
  progress (progressreport);
- file-blur-mp4.sh interrupted with SIGINT in the middle of a long clip (people-walking.mp4, 139 s)
  ends a valid mp4: ffprobe reads its duration and frames (the moov atom is there), ffmpeg decodes
  it to the end without an error;
- meta-messages.sh prints a unetseg message per frame;
- the RTP pair: rtp-receive.sh OUT.mp4 records what rtp-send.sh sends, ended by SIGINT;
- rtp-send.sh keeps real time on this machine: its own chain fed by a live 640x480 30 fps source
  for 10 s delivers at least 90% of the frames (tests/pipelines/rtp_realtime.py);
- multi-camera.sh, small (320x240, 15 fps, 3 s of frames per camera): two cameras (the asl clips
  looped, paced as live) to one mp4 each, every file H.264 of the right size with at least 80% of
  the frames offered, the background blurred; three cameras tiled into a 2x2 mosaic whose fourth tile stays black and
  whose other three show pictures; two cameras as MPEG-TS over SRT to two srtsrc listeners, what
  they receive decoded; flags it must refuse, refused with the reason.

Needs the build (UNETSEG_BUILD_ROOT, given to the scripts as UNETSEG_BUILD), ../shared
(UNETSEG_SHARED) and ffmpeg (scripts/setup.sh). About 60 s.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE = os.environ.get("UNETSEG_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
PIPELINES = os.path.join(SOURCE, "pipelines")
BUILD = os.path.abspath(os.environ.get("UNETSEG_BUILD_ROOT", os.path.join(SOURCE, "build")))
SHARED = os.environ.get("UNETSEG_SHARED", os.path.join(SOURCE, "..", "shared"))
CLIP = os.path.join(SHARED, "media", "asl", "thanks.mkv")  # 640x480, 30 fps, 51 frames
LONG = os.path.join(SHARED, "media", "people-walking.mp4")  # 768x432, 10 fps, 139 s


def env_for(out):
    env = dict(os.environ)
    for var in ("MODEL", "INPUT", "UNETSEG_ARGS", "GST_PLUGIN_PATH", "GST_PLUGIN_PATH_1_0",
                "COUNT", "SIZE", "FPS", "DURATION", "CAMERAS", "RTSP_URLS", "OUTPUT", "OUT_DIR",
                "RTP", "SRT", "CLIPS", "MODE", "TEST_PATTERN", "RTSP_LATENCY"):
        env.pop(var, None)
    env["UNETSEG_BUILD"] = BUILD
    env["OUT"] = out
    return env


def script(name):
    return os.path.join(PIPELINES, name)


def ffprobe(path):
    r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                        "-show_entries", "stream=codec_name,profile,pix_fmt,nb_read_frames:"
                        "format=duration", "-of", "default=noprint_wrappers=1", path],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or r.stderr:
        raise AssertionError("ffprobe %s: %s" % (path, r.stderr))
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def decodes_cleanly(path):
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"],
                       capture_output=True, text=True, timeout=300)
    return r.returncode == 0 and r.stderr == "", r.stderr


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_ports(count):
    """A first port P with P..P+count-1 all free on 127.0.0.1 (multi-camera.sh --srt counts up)."""
    for _ in range(50):
        first = free_udp_port()
        socks = []
        try:
            for port in range(first, first + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no %d consecutive free UDP ports on 127.0.0.1" % count)


def grey_frame(path, at, width, height):
    """One decoded frame of a video at `at` seconds, scaled to width x height, as rows of grey
    levels (ffmpeg)."""
    r = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(at), "-i", path, "-frames:v", "1",
                        "-vf", "scale=%d:%d" % (width, height), "-f", "rawvideo",
                        "-pix_fmt", "gray", "-"], capture_output=True, timeout=60)
    if r.returncode != 0 or len(r.stdout) != width * height:
        raise AssertionError("ffmpeg %s at %s s: %d bytes, %s" % (path, at, len(r.stdout),
                                                                 r.stderr.decode()))
    return [r.stdout[y * width:(y + 1) * width] for y in range(height)]


def sharpness(rows, x0, y0, x1, y1):
    """Mean absolute difference of horizontal neighbours in [x0, x1) x [y0, y1): edges."""
    diffs = [abs(row[x + 1] - row[x]) for row in rows[y0:y1] for x in range(x0, x1 - 1)]
    return sum(diffs) / len(diffs)


def region_stats(rows, x0, y0, x1, y1):
    """Mean and standard deviation of the grey levels in [x0, x1) x [y0, y1)."""
    values = [v for row in rows[y0:y1] for v in row[x0:x1]]
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


class FileScripts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = cls.tmp.name

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_script(self, *args, timeout=300):
        return subprocess.run([script(args[0]), *args[1:]], capture_output=True, text=True,
                              timeout=timeout, env=env_for(self.out))

    def check_mp4(self, path, frames):
        info = ffprobe(path)
        self.assertEqual((info["codec_name"], info["pix_fmt"]), ("h264", "yuv420p"))
        self.assertEqual(info["profile"], "High")
        self.assertIn(int(info["nb_read_frames"]), frames)
        ok, err = decodes_cleanly(path)
        self.assertTrue(ok, err)
        return info

    def test_file_blur_mp4(self):
        r = self.run_script("file-blur-mp4.sh", CLIP)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.check_mp4(os.path.join(self.out, "blur.mp4"), [51])
        self.assertRegex(r.stdout, r"progressreport\d* \(\d\d:\d\d:\d\d\): \d+ / \d+ seconds")
        self.assertIn("Got EOS", r.stdout)

    def test_alpha_compositor(self):
        out = os.path.join(self.out, "composited.mp4")
        r = self.run_script("alpha-compositor.sh", CLIP, out)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.check_mp4(out, range(51, 53))  # compositor may repeat the last frame once
        self.assertIn("progressreport", r.stdout)

    def test_sigint_ends_a_valid_mp4(self):
        out = os.path.join(self.out, "interrupted.mp4")
        proc = subprocess.Popen([script("file-blur-mp4.sh"), LONG, out], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env_for(self.out))
        # Wait until a few seconds of the clip are through (progressreport says so), then Ctrl-C.
        seen = ""
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            seen += line
            m = re.search(r"\): (\d+) / 139 seconds", line)
            if (m and int(m.group(1)) >= 3) or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGINT)  # the script is gst-launch-1.0 -e (exec)
        rest, _ = proc.communicate(timeout=120)
        seen += rest
        self.assertEqual(proc.returncode, 0, seen)
        self.assertIn("Interrupt", seen)
        info = self.check_mp4(out, range(20, 1390))
        frames = int(info["nb_read_frames"])
        self.assertAlmostEqual(float(info["duration"]), frames / 10, delta=0.2)

    def test_meta_messages(self):
        r = self.run_script("meta-messages.sh", CLIP)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(re.findall(r": unetseg, .*foreground-fraction", r.stdout)), 51)


class Rtp(unittest.TestCase):
    def test_receiver_records_what_the_sender_sends(self):
        with tempfile.TemporaryDirectory() as out:
            env = env_for(out)
            env["PORT"] = str(free_udp_port())
            recorded = os.path.join(out, "rtp.mp4")
            receiver = subprocess.Popen([script("rtp-receive.sh"), recorded],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env)
            time.sleep(1.5)
            sender = subprocess.run([script("rtp-send.sh"), CLIP], capture_output=True,
                                    text=True, timeout=120, env=env)
            self.assertEqual(sender.returncode, 0, sender.stdout + sender.stderr)
            time.sleep(1)
            receiver.send_signal(signal.SIGINT)
            log, _ = receiver.communicate(timeout=60)
            self.assertEqual(receiver.returncode, 0, log)
            info = ffprobe(recorded)
            self.assertEqual(info["codec_name"], "h264")
            self.assertEqual(info["pix_fmt"], "yuv420p")
            self.assertGreaterEqual(int(info["nb_read_frames"]), 49)  # 51 sent over loopback

    def test_sender_keeps_real_time(self):
        r = subprocess.run([sys.executable, os.path.join(SOURCE, "tests", "pipelines",
                                                         "rtp_realtime.py"),
                            "--seconds", "10", "--port", str(free_udp_port())],
                           capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, GST_PLUGIN_PATH_1_0=os.path.join(BUILD,
                                                                                 "gst-plugin")))
        self.assertEqual(r.returncode, 0, r.stderr)
        print(r.stdout.strip(), file=sys.stderr)
        m = re.match(r"in (\d+) out (\d+)", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        offered, out = int(m.group(1)), int(m.group(2))
        self.assertGreaterEqual(out, 0.9 * offered, r.stdout)


class MultiCamera(unittest.TestCase):
    """pipelines/multi-camera.sh, small: 320x240 at 15 fps, 3 s of frames per camera (45)."""
    SMALL = ["--size", "320x240", "--fps", "15", "--duration", "3"]
    OFFERED = 45

    def run_script(self, out, *args, timeout=120):
        return subprocess.run([script("multi-camera.sh"), *args], capture_output=True, text=True,
                              timeout=timeout, env=env_for(out))

    def check_h264(self, path, size, strict=True):
        info = ffprobe_size(path, strict)
        self.assertEqual(info["codec_name"], "h264", info)
        self.assertEqual((int(info["width"]), int(info["height"])), size, info)
        frames = int(info["nb_read_frames"])
        # Every frame a camera offers, less the few its leaky queue may lose on a busy machine.
        self.assertGreaterEqual(frames, 0.8 * self.OFFERED, info)
        self.assertLessEqual(frames, self.OFFERED + 1, info)
        return frames

    def test_one_mp4_per_camera(self):
        with tempfile.TemporaryDirectory() as out:
            files = os.path.join(out, "cams")
            r = self.run_script(out, "--count", "2", *self.SMALL, "--out-dir", files)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(sorted(os.listdir(files)), ["cam0.mp4", "cam1.mp4"])
            for i in range(2):
                path = os.path.join(files, "cam%d.mp4" % i)
                self.check_h264(path, (320, 240))
                ok, err = decodes_cleanly(path)
                self.assertTrue(ok, err)
                self.assertRegex(r.stdout, r"cam%d \(\d\d:\d\d:\d\d\): \d+ seconds" % i)
            self.assertIn("2 cameras (again,book)", r.stderr)  # two different clips
            self.assertIn("Got EOS", r.stdout)
            # mode=blur: the office's door and wall at the left of again.mkv (no person there)
            # has lost most of its edges against the clip itself (measured: 6.3 -> 1.3).
            clip = sharpness(grey_frame(os.path.join(SHARED, "media", "asl", "again.mkv"), 1.0,
                                        320, 240), 0, 0, 60, 240)
            out = sharpness(grey_frame(os.path.join(files, "cam0.mp4"), 2.0, 320, 240),
                            0, 0, 60, 240)
            self.assertLess(out, 0.5 * clip, "background not blurred: edges %.2f in the clip, "
                            "%.2f out" % (clip, out))

    def test_shared_model_flags_reach_the_elements(self):
        """--batch-size, --batch-timeout, --model-instance-id and --private-model are the
        element's properties: a bad value is refused by the element itself, and good ones run."""
        with tempfile.TemporaryDirectory() as out:
            files = os.path.join(out, "cams")
            r = self.run_script(out, "--count", "2", *self.SMALL, "--out-dir", files,
                                "--batch-size", "2", "--batch-timeout", "30",
                                "--model-instance-id", "cams")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            for i in range(2):
                self.check_h264(os.path.join(files, "cam%d.mp4" % i), (320, 240))
            r = self.run_script(out, "--count", "2", *self.SMALL, "--out-dir", files,
                                "--private-model")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # Out of the properties' ranges: refused before anything runs (gst-launch itself
            # would only warn and keep the default).
            for flag, value in (("--batch-size", "0"), ("--batch-size", "x"),
                                ("--batch-timeout", "-1")):
                r = self.run_script(out, "--count", "1", *self.SMALL, "--out-dir", files,
                                    flag, value)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn(flag + " must be", r.stderr)

    def test_mosaic_of_three(self):
        with tempfile.TemporaryDirectory() as out:
            path = os.path.join(out, "mosaic.mp4")
            r = self.run_script(out, "--count", "3", *self.SMALL, "--output", path)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("a 2x2 mosaic", r.stderr)
            self.check_h264(path, (320, 240))
            rows = grey_frame(path, 2.0, 320, 240)
            tiles = [(0, 0), (160, 0), (0, 120), (160, 120)]
            stats = [region_stats(rows, x + 8, y + 8, x + 152, y + 112) for x, y in tiles]
            for i, (mean, sd) in enumerate(stats[:3]):  # a picture: a person before an office
                self.assertGreater(sd, 10, "tile %d is flat: %s" % (i, stats))
                self.assertGreater(mean, 40, "tile %d is dark: %s" % (i, stats))
            mean, sd = stats[3]  # no fourth camera: compositor's black background
            self.assertLess(mean, 24, stats)
            self.assertLess(sd, 4, stats)

    def test_srt_per_camera(self):
        with tempfile.TemporaryDirectory() as out:
            port = free_udp_ports(2)
            receivers = []
            for i in range(2):
                receivers.append(subprocess.Popen(
                    ["gst-launch-1.0", "-e", "srtsrc",
                     "uri=srt://127.0.0.1:%d?mode=listener" % (port + i), "!", "filesink",
                     "location=%s" % os.path.join(out, "srt%d.ts" % i)],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            try:
                time.sleep(1)
                r = self.run_script(out, "--count", "2", *self.SMALL,
                                    "--srt", "srt://127.0.0.1:%d" % port)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                time.sleep(1)
            finally:
                logs = []
                for rx in receivers:
                    rx.send_signal(signal.SIGINT)
                    logs.append(rx.communicate(timeout=30)[0])
            for i in range(2):
                path = os.path.join(out, "srt%d.ts" % i)
                self.assertTrue(os.path.getsize(path) > 0, logs[i])
                # SRT's live mode drops what is still unsent when the sender closes (no linger),
                # so the last frame or two may arrive cut: count the frames whatever ffprobe says
                # of those, and want the first 2 s (30 frames) to decode without an error.
                self.check_h264(path, (320, 240), strict=False)
                r = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-t", "2", "-f", "null",
                                    "-"], capture_output=True, text=True, timeout=60)
                self.assertEqual((r.returncode, r.stderr), (0, ""), path)

    def test_refuses_bad_flags(self):
        with tempfile.TemporaryDirectory() as out:
            for args, reason in [
                    (["--count", "0"], "--count must be 1 to 64, not '0'"),
                    (["--size", "1080p"], "--size must be WIDTHxHEIGHT, not '1080p'"),
                    (["--camera", "/nonexistent/video9"],
                     "camera /nonexistent/video9: no such video device"),
                    (["--rtsp", "http://camera/"], "wants an rtsp:// or rtsps:// URL"),
                    (["--count", "3", "--rtsp", "rtsp://a/", "--rtsp", "rtsp://b/"],
                     "--count 3, but 2 cameras given"),
                    (["--out-dir", out, "--srt", "srt://127.0.0.1:7001"], "exclude each other")]:
                r = self.run_script(out, *args)
                self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
                self.assertIn(reason, r.stderr, args)


def ffprobe_size(path, strict=True):
    """Codec, size and decoded frames; strict: a decoding error fails too."""
    r = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                        "-show_entries", "stream=codec_name,width,height,nb_read_frames",
                        "-of", "default=noprint_wrappers=1", path],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0 or (strict and r.stderr):
        raise AssertionError("ffprobe %s: %s" % (path, r.stderr))
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


if __name__ == "__main__":
    unittest.main()
