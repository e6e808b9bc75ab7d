#!/usr/bin/python3
"""Convert a TensorFlow.js graph model (model.json + weight shards) into ONNX that OpenCV DNN
runs, for one input size, and prove it loads.

The command line of unetseg_models.tfjs (beside this file); `convert_tfjs.py --help` says what
it does. Runs with Debian's /usr/bin/python3 and python3-onnx, python3-numpy (python3-opencv for
the check).
"""

import argparse
import os
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
try:
    import onnx
    from unetseg_models import PrepareError
    from unetseg_models.prepare import prepare_file
    from unetseg_models.tfjs import convert_tfjs, parse_size
    from unetseg_models.versions import (OLDEST_OPENCV, parse_opencv_version, plan_steps,
                                         running_opencv, version_text)
except ImportError as e:
    if (e.name or "").split(".")[0] not in ("numpy", "onnx"):
        raise  # not a missing Debian package: a bug, shown with its traceback
    sys.exit(f"convert_tfjs.py: error: {e}: run it with Debian's /usr/bin/python3 and "
             "python3-onnx, python3-numpy (and python3-opencv for the check) installed")

DESCRIPTION = """\
Convert a TF.js graph model into ONNX for OpenCV DNN, for one input size.

The graph is evaluated for that size: what depends only on shapes is computed now, TensorFlow
control flow is resolved for the inputs fixed here (--downsample-ratio), the layout becomes
NCHW (input 1x3xHxW, outputs 1xCxHxW, names as in the model's signature without ':0'), Pad
before a convolution becomes its pads, TF's SpaceToBatchND/BatchToSpaceND around a convolution
becomes ONNX dilations. Inputs whose shape the signature leaves open (recurrent states) take
the shape they are broadcast to.

Then, unless --no-prepare, the ONNX is prepared for the target OpenCV as models/prepare.py
does (the rewrites it needs, e.g. clip_to_attributes below 4.7) and checked: loaded and run by
OpenCV and compared with a numpy run of the converted graph."""

EPILOG = """\
examples:
  convert_tfjs.py selfie.json selfie.onnx                           # 256x256, as its signature
  convert_tfjs.py rvm.json rvm-320.onnx --size 320x320 --downsample-ratio 1 --drop-output fgr
  convert_tfjs.py rvm.json rvm-320.onnx --size 320 --downsample-ratio 1 --drop-output fgr \\
      --for-opencv 4.10 --spec rvm.json --check-with build-opencv4.10/tools/unetseg-segment

exit status: 0 written; 1 refused (the message says why); 2 bad usage.
"""


def main(argv=None):
    parser = argparse.ArgumentParser(prog="convert_tfjs.py", description=DESCRIPTION,
                                     epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the TF.js model.json (its .bin shards beside it)")
    parser.add_argument("output", help="the .onnx to write")
    parser.add_argument("--size", metavar="N|WxH",
                        help="the image input's size (default: the size its signature fixes)")
    parser.add_argument("--downsample-ratio", type=float, metavar="R",
                        help="fix the input 'downsample_ratio' (Robust Video Matting: the "
                        "network runs at size x R; 1 keeps it at the input size)")
    parser.add_argument("--drop-output", action="append", default=[], metavar="NAME",
                        help="leave this output out, with what only it needs (RVM: fgr)")
    parser.add_argument("--no-prepare", action="store_true",
                        help="write the converted ONNX (standard opset 13) without preparing it "
                        "for an OpenCV version or checking it")
    parser.add_argument("--for-opencv", metavar="X.Y",
                        help="the OpenCV to prepare for (default: the cv2 here, "
                        f"{version_text(running_opencv() or OLDEST_OPENCV)})")
    parser.add_argument("--spec", metavar="SIDECAR.json",
                        help="the model's sidecar: the check prepares its input as it says")
    parser.add_argument("--check-image", metavar="IMAGE", help="run the check on this photo")
    parser.add_argument("--check-with", metavar="PROGRAM",
                        help="check with unetseg-segment built against the target OpenCV "
                        "(needs --spec), as models/prepare.py does")
    args = parser.parse_args(argv)

    def log(msg):
        print(msg, flush=True)

    try:
        target = parse_opencv_version(args.for_opencv) if args.for_opencv else None
        size = parse_size(args.size) if args.size else None
        constants = ({"downsample_ratio": args.downsample_ratio}
                     if args.downsample_ratio is not None else None)
        model = convert_tfjs(args.model, size=size, constants=constants,
                             drop_outputs=args.drop_output, log=log)
        onnx.checker.check_model(model)
        if args.no_prepare:
            with open(args.output, "wb") as f:
                f.write(model.SerializeToString())
            log(f"wrote {args.output} (not prepared for an OpenCV version, not checked)")
            return 0
        spec = None
        if args.spec:
            import json
            try:
                with open(args.spec) as f:
                    spec = json.load(f).get("input", {})
            except (OSError, ValueError, AttributeError) as e:
                raise PrepareError(f"cannot read the sidecar {args.spec}: {e}") from None
        out_dir = os.path.dirname(os.path.abspath(args.output))
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".convert_tfjs.") as tmp:
            converted = os.path.join(tmp, "converted.onnx")
            with open(converted, "wb") as f:
                f.write(model.SerializeToString())
            plan = plan_steps(model, target)
            steps = [step for step, needed, _ in plan if needed]
            for step, needed, why in plan:
                log(f"  {step}: {why}" if needed else f"  {step}: skipped, {why}")
            prepare_file(converted, args.output, steps, log=log, spec=spec,
                         image=args.check_image, opencv=target, check_with=args.check_with,
                         sidecar=args.spec)
    except PrepareError as e:
        print(f"convert_tfjs.py: error: {e}", file=sys.stderr)
        print(f"convert_tfjs.py: nothing was written to {args.output}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
