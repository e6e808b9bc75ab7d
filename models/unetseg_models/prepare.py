"""Rewrite an ONNX model into ONNX that OpenCV DNN (4.6 by default) loads, and prove it
(prepare_file; the command line is models/prepare.py).

OpenCV 4.6's ONNX importer refuses graphs that other runtimes accept. The rewrites
(rewrites.py) are the ones the project's real models need, each exact (the rewritten graph
computes what the original one defines). Which of them a model needs depends on the OpenCV
version it is prepared for (--for-opencv X.Y, default the version of the cv2 module that runs
this; see versions.plan_steps): fp16_to_fp32, fix_conv_transpose_pads, fix_input_size:N|WxH,
keep_output:NAME, clip_to_attributes.

The nodes are always put in topological order on loading (producers first: ONNX requires it,
OpenCV 4.10 refuses a file without it), whatever steps run, even none (graph.load_model).

After writing, the result is loaded with cv2.dnn.readNetFromONNX and run once; the output is
compared with a reference run of the SOURCE graph (OpenCV itself when it loads the source, else
the small numpy evaluator of reference.py), and the difference is printed (checks.py). A model
OpenCV cannot load is never written. When the target OpenCV is not the cv2 that runs this, cv2
proves nothing: the check then runs --check-with PROGRAM (unetseg-segment built against the
target OpenCV), or is skipped with a notice saying so.

Runs with Debian's /usr/bin/python3 and python3-onnx, python3-numpy, python3-opencv.
"""

import os
import tempfile

import onnx

from . import PrepareError
from .checks import check, check_with_program, not_checked_notice
from .graph import checkable, load_model
from .rewrites import apply_steps
from .versions import OLDEST_OPENCV, running_opencv, version_text


def prepare_file(src_path, out_path, steps, log=print, do_check=True, spec=None, image=None,
                 reference="auto", tolerance=None, reference_cache=None, opencv=None,
                 check_with=None, sidecar=None):
    """Prepares src_path into out_path. out_path appears only when everything passed (a temp
    file beside it, renamed at the end); on failure nothing is left behind.

    opencv: the target OpenCV (major, minor); None: the cv2 that runs this. The cv2 check runs
    when that is the target; check_with (a program, see check_with_program; it needs `sidecar`,
    the sidecar JSON file) checks with the target's OpenCV; without either, a notice says that
    the result was not loaded by the target."""
    running = running_opencv()
    target = opencv or running or OLDEST_OPENCV
    if do_check and check_with and not sidecar:
        raise PrepareError(f"--check-with {check_with} needs the model's sidecar (the program "
                           "reads it beside the model): give --spec SIDECAR.json")
    log(f"preparing {src_path} for OpenCV {version_text(target)}: steps "
        f"{', '.join(steps) if steps else '(none)'}")
    source = load_model(src_path, log)
    model = onnx.ModelProto()
    model.CopyFrom(source)
    apply_steps(model, steps, log)
    try:
        onnx.checker.check_model(checkable(model))
    except Exception as e:
        raise PrepareError(f"the rewritten graph is not valid ONNX ({str(e).strip()}): this is "
                           "a bug of the preparation, please report it with the model") from None
    out_dir = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(out_dir):
        raise PrepareError(f"the output directory {out_dir} does not exist")
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix="." + os.path.basename(out_path) + ".",
                               suffix=".tmp")
    notice = None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        result = None
        if do_check:
            # Without any cv2, check() says to install it (unless a program checks instead).
            if target == running or (running is None and not check_with):
                result = check(tmp, source, model, log, spec=spec, image=image,
                               reference=reference, tolerance=tolerance,
                               reference_cache=reference_cache)
            if check_with:
                result = dict(result or {}, **check_with_program(
                    tmp, model, check_with, sidecar, target, log, image=image,
                    reference=reference, tolerance=tolerance))
            elif target != running:
                notice = not_checked_notice(out_path, target, running)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    log(f"wrote {out_path}")
    if notice:
        log(notice)
    return result
