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
  for 10 s delivers at least 90% of the frames (tests/pipelines/rtp_realtime.py).

Needs the build (UNETSEG_BUILD_ROOT, given to the scripts as UNETSEG_BUILD), ../shared
(UNETSEG_SHARED) and ffmpeg (scripts/setup.sh). About 40 s.
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
    for var in ("MODEL", "INPUT", "UNETSEG_ARGS", "GST_PLUGIN_PATH", "GST_PLUGIN_PATH_1_0"):
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


if __name__ == "__main__":
    unittest.main()
