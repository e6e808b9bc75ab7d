"""The target OpenCV version: reading it, and which rewrites it needs (plan_steps)."""

import re

import onnx

from . import PrepareError
from .graph import FLOAT16, attr


OLDEST_OPENCV = (4, 6)  # the oldest OpenCV the project builds against (Debian's, python3-opencv)


def parse_opencv_version(text):
    """'4.10' (or '4.10.0', as cv2.__version__ writes it) -> (4, 10); PrepareError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.\d+)?(?:[-+][\w.-]*)?\s*", str(text))
    if not m:
        raise PrepareError(f"bad OpenCV version '{text}': give it as X.Y, e.g. 4.6 or 4.10")
    version = (int(m.group(1)), int(m.group(2)))
    if version < OLDEST_OPENCV:
        raise PrepareError(f"OpenCV {text} is older than the oldest OpenCV the project supports "
                           f"({version_text(OLDEST_OPENCV)})")
    return version


def version_text(version):
    return f"{version[0]}.{version[1]}"


def running_opencv():
    """The (major, minor) of the cv2 module this Python imports, or None without one."""
    try:
        import cv2
    except ImportError:
        return None
    return parse_opencv_version(cv2.__version__)


def has_fp16(model):
    graph = model.graph
    return any(t.data_type == FLOAT16 for t in graph.initializer) or any(
        (n.op_type == "Cast" and attr(n, "to") == FLOAT16) or any(
            a.type == onnx.AttributeProto.TENSOR and a.t.data_type == FLOAT16 for a in n.attribute)
        for n in graph.node)


def has_asymmetric_conv_transpose(model):
    for n in model.graph.node:
        if n.op_type == "ConvTranspose":
            pads = list(attr(n, "pads", []))
            if pads[:len(pads) // 2] != pads[len(pads) // 2:]:
                return True
    return False


def has_clip_inputs(model):
    return any(n.op_type == "Clip" and len(n.input) > 1 and any(n.input[1:])
               for n in model.graph.node)


def plan_steps(model, opencv=None):
    """What each automatic rewrite means for this model and the target OpenCV (major, minor;
    None: the cv2 that runs this, or the oldest supported without one). Returns a list of
    (step, needed, reason) for the rewrites that concern the model: the needed ones first
    are what auto_steps returns; the others are skipped, and the reason says why.

    Measured with the project's real models (OpenCV 4.6 = Debian's python3-opencv, 4.10 =
    scripts/build-opencv.sh): those are the only versions measured.
      fp16 values: 4.6 refuses them ("Unsupported data type: FLOAT16"), topologically sorted or
        not; 4.10 loads and runs ISNet with its fp16 weights and Cast nodes as they are. 4.7 to
        4.9 were not measured, so they keep the rewrite (fp32 loads in every version); versions
        after 4.10 are taken to read fp16 as 4.10 does.
      asymmetric ConvTranspose pads (the Prisma portrait U-Net): 4.6 refuses them at import,
        4.10 at its first forward ("Unsupported asymmetric padding in deconvolution layer"):
        needed for every version.
      Clip with min/max inputs (opset 11+: TF's Relu6 and clip_by_value as models/convert_tfjs.py
        writes them, PyTorch's ReLU6/Hardtanh): 4.6 refuses it ("Node [Clip] parse error"),
        reads only the attribute form; opencv/opencv#22100, first released in 4.7, reads the
        inputs (4.10 measured). Needed below 4.7.
    (The topological order is not a step: load_model always sorts.)"""
    if opencv is None:
        opencv = running_opencv() or OLDEST_OPENCV
    v = version_text(opencv)
    plan = []
    if has_fp16(model):
        if opencv < (4, 10):
            plan.append(("fp16_to_fp32", True,
                         f"the model holds fp16 values, which OpenCV {v} refuses" if opencv ==
                         (4, 6) else f"the model holds fp16 values; OpenCV 4.6 refuses them, "
                         f"4.10 reads them, {v} was not measured"))
        else:
            plan.append(("fp16_to_fp32", False, f"not needed for OpenCV {v} (it reads fp16 "
                         "values: they stay fp16)"))
    if has_clip_inputs(model):
        if opencv < (4, 7):
            plan.append(("clip_to_attributes", True,
                         f"Clip nodes take min/max as inputs, which OpenCV {v} does not read"))
        else:
            plan.append(("clip_to_attributes", False,
                         f"not needed for OpenCV {v} (it reads Clip's min/max inputs)"))
    if has_asymmetric_conv_transpose(model):
        plan.append(("fix_conv_transpose_pads", True,
                     "asymmetric ConvTranspose pads, which OpenCV 4.6 and 4.10 both refuse"))
    return plan


def auto_steps(model, opencv=None):
    """The rewrites this model needs for the target OpenCV (major, minor; None: the cv2 that runs
    this), found by looking at it. See plan_steps for which version needs what."""
    return [step for step, needed, _ in plan_steps(model, opencv) if needed]
