#!/usr/bin/python3
"""Export a U2-Net, U2-Netp or classic U-Net PyTorch checkpoint to ONNX that OpenCV 4.6 DNN
loads, with its ModelSpec sidecar (docs/MODEL_SPEC.md), and prove it.

    export.py u2net  --checkpoint u2net.pth  u2net.onnx       # + u2net.json beside it
    export.py u2netp --checkpoint u2netp.pth --size 320 u2netp.onnx
    export.py unet --classes 3 --depth 4 --width 64 --checkpoint unet.pth unet.onnx
    export.py u2netp u2netp-random.onnx                       # random weights: tests only

The command line of unetseg_models.export (beside this file), which says what is written, how
it is checked and which checkpoints load; the architectures are unetseg_models/u2net.py and
unetseg_models/unet.py.

Runs with Debian's /usr/bin/python3 and python3-torch, python3-onnx, python3-numpy,
python3-opencv.
"""

import argparse
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
try:
    from unetseg_models import PrepareError
    from unetseg_models.export import ARCHS, SEED, export
    import torch
except ImportError as e:
    if (e.name or "").split(".")[0] not in ("numpy", "onnx", "torch"):
        raise  # not a missing Debian package: a bug, shown with its traceback
    sys.exit(f"export.py: error: {e}: run it with Debian's /usr/bin/python3 and python3-torch, "
             "python3-onnx, python3-numpy, python3-opencv installed "
             "(apt-get install python3-torch python3-onnx python3-numpy python3-opencv)")


HELP_EPILOG = """\
examples:
  export.py u2net  --checkpoint u2net.pth  u2net.onnx     # official weights, 320x320
  export.py u2netp --checkpoint u2netp.pth u2netp.onnx
  export.py unet --classes 3 --width 32 --upsample transposed --checkpoint seg.pth seg.onnx
  export.py u2netp --size 320 /tmp/u2netp-random.onnx     # random weights (tests only)

then:  gst-launch-1.0 ... ! unetseg model=u2net.onnx ! ...
       unetseg-segment --model u2net.onnx photo.jpg --out mask.png

exit status: 0 written; 1 refused (the message says why and what to do); 2 bad usage.
"""


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="export.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Export a U2-Net / U2-Netp / U-Net PyTorch checkpoint to ONNX for OpenCV "
        "4.6 DNN (opset 11, static shape, one output) with its ModelSpec sidecar, checked by "
        "running it in OpenCV against PyTorch.", epilog=HELP_EPILOG)
    parser.add_argument("arch", choices=ARCHS, help="the architecture of the checkpoint")
    parser.add_argument("output", help="the .onnx to write; the sidecar goes beside it (.json)")
    parser.add_argument("--checkpoint", metavar="FILE.pth",
                        help="the weights (a state_dict); without it: random weights, for tests")
    parser.add_argument("--size", type=int, default=320,
                        help="the input side, fixed in the graph (default 320, U2-Net's own)")
    parser.add_argument("--name", help="the model name in the sidecar (default: the file's stem)")
    parser.add_argument("--seed", type=int, default=SEED, help=argparse.SUPPRESS)
    parser.add_argument("--check-image", metavar="IMAGE",
                        help="run the OpenCV check on this photo (default: a synthetic picture)")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="skip the OpenCV check (not recommended)")
    u = parser.add_argument_group("classic U-Net options (must match the checkpoint)")
    u.add_argument("--classes", type=int, default=1, help="output channels (default 1)")
    u.add_argument("--depth", type=int, default=4, help="down-samplings (default 4)")
    u.add_argument("--width", type=int, default=64, help="channels at the first level (default 64)")
    u.add_argument("--upsample", choices=["bilinear", "transposed"], default="bilinear",
                   help="upsampling (default bilinear)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    def log(msg):
        print(msg, flush=True)

    try:
        export(args.arch, args.output, checkpoint=args.checkpoint, size=args.size,
               classes=args.classes, depth=args.depth, width=args.width, upsample=args.upsample,
               name=args.name, log=log, check=args.check, image=args.check_image, seed=args.seed)
    except PrepareError as e:
        print(f"export.py: error: {e}", file=sys.stderr)
        print(f"export.py: nothing was written to {args.output}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
