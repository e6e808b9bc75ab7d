#!/usr/bin/python3
"""Rewrite an ONNX model into ONNX that OpenCV DNN (4.6 by default) loads, and prove it.

The command line of unetseg_models.prepare (beside this file): `prepare.py --help` says what it
does; the rewrites are in unetseg_models/rewrites.py, which OpenCV needs which in
unetseg_models/versions.py, the check in unetseg_models/checks.py.

Runs with Debian's /usr/bin/python3 and python3-onnx, python3-numpy, python3-opencv.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
try:
    from unetseg_models import PrepareError
    from unetseg_models.graph import load_model
    from unetseg_models.prepare import prepare_file
    from unetseg_models.rewrites import parse_step
    from unetseg_models.versions import (OLDEST_OPENCV, parse_opencv_version, plan_steps,
                                         running_opencv, version_text)
except ImportError as e:
    if (e.name or "").split(".")[0] not in ("numpy", "onnx"):
        raise  # not a missing Debian package: a bug, shown with its traceback
    sys.exit(f"prepare.py: error: {e}: run it with Debian's /usr/bin/python3 and python3-onnx, "
             "python3-numpy (and python3-opencv for the check) installed")


HELP_DESCRIPTION = """\
Rewrite an ONNX model so that OpenCV DNN (cv2.dnn.readNetFromONNX) loads it, and prove it.

With no rewrite option, the ones the model needs for the target OpenCV (--for-opencv) are found
by looking at it: fp16_to_fp32 when it holds fp16 values and the target is older than 4.10,
clip_to_attributes when a Clip takes min/max as inputs and the target is older than 4.7,
fix_conv_transpose_pads when a ConvTranspose has asymmetric pads (every version). The nodes are
always sorted producers first (OpenCV 4.10 refuses an unsorted file)."""

HELP_EPILOG = """\
the check (on by default): the written model is loaded with cv2.dnn.readNetFromONNX and run
once; its output is compared with the SOURCE graph, run by OpenCV when it loads as is, else by a
small numpy evaluator (for ISNet at 1024 that takes about a minute on 2 cores), and the
difference is printed. When the input size changed, the source runs at its own size and the
output is compared resized (a measure of the resolution change), and the prepared graph is
also run by numpy to show that OpenCV computes it exactly. A model that OpenCV cannot load, or
whose output differs from the reference by more than the tolerance (default 1% of the output's
range), is not written.

When the target (--for-opencv) is not the version of the cv2 here, cv2 proves nothing: with
--check-with PROGRAM (unetseg-segment built against the target, see tools/segment_image.cpp)
and --spec, PROGRAM segments the check picture with the written model and its sidecar; without
it the model is written unchecked, and a notice says so and how to check it.

examples:
  prepare.py isnet_fp16.onnx isnet-320.onnx --keep-output output --fp32 --input-size 320 \\
             --spec isnet-320.json --check-image person.jpg
  prepare.py prisma_nchw.onnx portrait-unet.onnx       # finds fix_conv_transpose_pads itself
  prepare.py model.onnx out.onnx --steps fp16_to_fp32,fix_input_size:512x384
  prepare.py isnet_fp16.onnx isnet-320.onnx --for-opencv 4.10 --keep-output output \\
             --input-size 320 --spec isnet-320.json \\
             --check-with build-opencv4.10/tools/unetseg-segment      # keeps fp16 weights

exit status: 0 written; 1 refused (the message says why and what to do); 2 bad usage.
"""


def opencv_version_arg(text):
    try:
        return parse_opencv_version(text)
    except PrepareError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="prepare.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=HELP_DESCRIPTION, epilog=HELP_EPILOG)
    parser.add_argument("input", help="the source .onnx")
    parser.add_argument("output", help="the .onnx to write (only once it passed the check)")
    rw = parser.add_argument_group(
        "rewrites", "applied in this order: --keep-output, --fp32, --fix-pads, --input-size, "
        "--batch\n"
        "(with --steps: exactly as listed)")
    rw.add_argument("--keep-output", metavar="NAME",
                    help="keep only this graph output (e.g. U2-Net/ISNet 'output', d0) and what "
                    "feeds it: less work per frame")
    rw.add_argument("--fp32", action="store_true",
                    help="fp16 initializers/constants to fp32, Cast chains removed (OpenCV: "
                    "'Unsupported data type: FLOAT16')")
    rw.add_argument("--fix-pads", action="store_true",
                    help="asymmetric ConvTranspose pads to symmetric pads plus an exact crop "
                    "(OpenCV: 'Unsupported asymmetric padding')")
    rw.add_argument("--input-size", metavar="N|WxH",
                    help="fix the input size; Resize target sizes frozen by the exporter are "
                    "rescaled, or refused with the sizes that would work")
    rw.add_argument("--batch", metavar="N",
                    help="make the graph take N frames in one forward (input N x C x H x W; "
                    "OpenCV also runs 1..N on it); graphs that would mix the frames are refused, "
                    "and the check compares each item with its batch-1 forward")
    rw.add_argument("--steps", metavar="LIST", dest="steps_list",
                    help="comma-separated steps as in models/catalog.toml: fp16_to_fp32, "
                    "fix_conv_transpose_pads, fix_input_size:N|WxH, keep_output:NAME, "
                    "clip_to_attributes, fix_batch:N")
    parser.add_argument("--for-opencv", metavar="X.Y", type=opencv_version_arg,
                        help="the OpenCV version the model is for: decides which rewrites are "
                        "needed and how the result is checked (default: the cv2 here, "
                        f"{version_text(running_opencv() or OLDEST_OPENCV)})")
    ck = parser.add_argument_group("the check")
    ck.add_argument("--check", dest="check", action="store_true", default=True,
                    help="check with OpenCV before writing (default)")
    ck.add_argument("--no-check", dest="check", action="store_false",
                    help="write without the OpenCV check (not recommended)")
    ck.add_argument("--spec", metavar="SIDECAR.json",
                    help="prepare the check input as this ModelSpec sidecar says "
                    "(docs/MODEL_SPEC.md; default RGB, x/255)")
    ck.add_argument("--check-image", metavar="IMAGE",
                    help="run the check on this photo (default: a synthetic picture)")
    ck.add_argument("--check-with", metavar="PROGRAM",
                    help="check with this program, unetseg-segment built against the target "
                    "OpenCV (needs --spec): PROGRAM --model OUT.onnx IMAGE --npy MAP.npy")
    ck.add_argument("--reference", choices=["auto", "opencv", "numpy", "none"], default="auto",
                    help="what to compare with (default auto: OpenCV on the source if it loads "
                    "as is, else numpy)")
    ck.add_argument("--tolerance", type=float, metavar="T",
                    help="largest max abs difference accepted (default: 1%% of the output range)")
    args = parser.parse_args(argv)
    singles = args.keep_output or args.fp32 or args.fix_pads or args.input_size or args.batch
    if args.steps_list and singles:
        parser.error("--steps cannot be combined with the single rewrite options")
    if args.check_with and not args.check:
        parser.error("--check-with cannot be combined with --no-check")
    running = running_opencv()
    target = args.for_opencv or running or OLDEST_OPENCV

    def log(msg):
        print(msg, flush=True)

    try:
        if args.steps_list:
            steps = [s.strip() for s in args.steps_list.split(",") if s.strip()]
        else:
            steps = ([f"keep_output:{args.keep_output}"] if args.keep_output else []) + \
                (["fp16_to_fp32"] if args.fp32 else []) + \
                (["fix_conv_transpose_pads"] if args.fix_pads else []) + \
                ([f"fix_input_size:{args.input_size}"] if args.input_size else []) + \
                ([f"fix_batch:{args.batch}"] if args.batch else [])
        for s in steps:
            parse_step(s)
        sidecar = args.spec
        if args.check_with and not sidecar:
            beside = os.path.splitext(args.output)[0] + ".json"
            if not os.path.isfile(beside):
                raise PrepareError(f"--check-with needs the model's sidecar (the program reads "
                                   f"it beside the model): give --spec SIDECAR.json, or put it "
                                   f"at {beside}")
            sidecar = beside
        spec = None
        if sidecar:
            try:
                with open(sidecar) as f:
                    spec = json.load(f).get("input", {})
            except (OSError, ValueError, AttributeError) as e:
                raise PrepareError(f"cannot read the sidecar {sidecar}: {e}") from None
        v = version_text(target)
        if not steps:
            plan = plan_steps(load_model(args.input), target)
            steps = [step for step, needed, _ in plan if needed]
            log(f"no rewrite asked for; for OpenCV {v} this model needs: "
                f"{', '.join(steps) or 'nothing'}")
            for step, needed, why in plan:
                log(f"  {step}: {why}" if needed else f"  {step}: skipped, {why}")
        elif args.for_opencv:
            # The steps asked for run as asked; say what the target needs beside them.
            plan = plan_steps(load_model(args.input), target)
            asked = {parse_step(s)[0] for s in steps}
            for step, needed, why in plan:
                if needed and step not in asked:
                    log(f"warning: {step} is not in the steps, but OpenCV {v} needs it: {why}")
                elif not needed and step in asked:
                    log(f"note: {step} runs as asked, but is {why}")
                elif not needed:
                    log(f"{step}: {why}")
        prepare_file(args.input, args.output, steps, log=log, do_check=args.check, spec=spec,
                     image=args.check_image, reference=args.reference, tolerance=args.tolerance,
                     opencv=target, check_with=args.check_with, sidecar=sidecar)
    except PrepareError as e:
        print(f"prepare.py: error: {e}", file=sys.stderr)
        print(f"prepare.py: nothing was written to {args.output}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
