#!/usr/bin/python3
"""The PyTorch peer for unetseg-bench: what a user would run instead of unetseg.

Exports a U2-Net-family model (models/unetseg_models/u2net.py, seeded random weights: speed
does not depend on the values) to ONNX with its sidecar, so that unetseg-bench can time exactly
the same network through OpenCV DNN in the same run, then times in PyTorch on the CPU:

  forward   net(x) on a 1x3xSxS tensor (torch.no_grad, eval mode), S = the model's input side
  pipeline  the official U2-Net test-time code on one frame of the given size, as
            models/unetseg_models/u2net_reference.py reproduces it (skimage resize in,
            max-normalise and ImageNet mean/std, forward, min-max, PIL resize of the 8-bit map
            back to the frame)

and prints one JSON object on stdout: torch version, threads, the ONNX path, and median/p95/all
milliseconds for both. Progress goes to stderr.

usage: bench_peer.py --arch u2netp --onnx OUT.onnx --image IMG --frame WxH [--size 320]
                     [--frames 10] [--threads N]
with PYTHONPATH=models (the source tree's, where the unetseg_models package lies; installed,
PREFIX/share/unetseg, where meson puts this script beside the package).
"""

import argparse
import json
import math
import os
import sys
import time


def summary(times):
    ordered = sorted(times)  # nearest rank, as unetseg-bench computes it
    rank = lambda q: ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    return {"median": rank(0.5), "p95": rank(0.95), "all": times}


def timed(fn, frames, warmup=2):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(frames):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=["u2net", "u2netp"], default="u2netp")
    parser.add_argument("--onnx", required=True, help="where to write the model for OpenCV")
    parser.add_argument("--image", required=True, help="a photo, scaled to --frame")
    parser.add_argument("--frame", default="1920x1080", help="frame size WxH for the pipeline")
    parser.add_argument("--size", type=int, default=320, help="the model's input side")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.frame.lower().split("x"))

    import numpy as np
    import torch
    from PIL import Image
    sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
    try:
        from unetseg_models import export, u2net_reference as ref
    except ModuleNotFoundError as e:
        if e.name != "unetseg_models":
            raise
        sys.exit("bench_peer.py: error: no module unetseg_models: run it with "
                 "PYTHONPATH=SOURCE_TREE/models")

    torch.set_num_threads(args.threads)
    log = lambda m: print(f"bench_peer: {m}", file=sys.stderr, flush=True)
    export.export(args.arch, args.onnx, size=args.size, log=log, warn=lambda m: None,
                  check=False)
    net = export.randomize(export.build_model(args.arch)).eval()

    x = torch.from_numpy(np.random.default_rng(0).standard_normal(
        (1, 3, args.size, args.size)).astype(np.float32))
    log(f"PyTorch {torch.__version__}, {args.threads} threads: {args.arch} forward x{args.frames}")
    with torch.no_grad():
        forward = timed(lambda: net(x), args.frames)

    frame = np.asarray(Image.open(args.image).convert("RGB").resize((width, height)))
    log(f"official pipeline on {width}x{height} x{args.frames}")
    pipeline = timed(lambda: ref.to_mask(ref.predict(net, frame, args.size), width, height),
                     args.frames)

    json.dump({"torch_version": torch.__version__, "threads": torch.get_num_threads(),
               "arch": args.arch, "size": args.size, "onnx": os.path.abspath(args.onnx),
               "frame": [width, height], "forward_ms": summary(forward),
               "pipeline_ms": summary(pipeline)}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
