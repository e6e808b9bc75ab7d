"""The check: the written model loaded by OpenCV and run once on a fixed picture, its output
compared with a reference run of the SOURCE graph (OpenCV itself when it loads the source, else
the numpy evaluator of reference.py); a model OpenCV cannot load, or that computes something
else, is refused. For an OpenCV other than the cv2 here, check_with_program has unetseg-segment
built against that OpenCV do the loading and running.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import numpy as np

from . import PrepareError
from .graph import data_inputs, dims_of, input_hw
from .reference import numpy_reference
from .versions import auto_steps, running_opencv, version_text


def check_image(path=None, size=512, channels=3):
    """The picture the check runs on (H x W x channels, 0..255): a photo when given, else a
    fixed synthetic one (a smooth colour field with a bright ellipse), so that every run
    compares the same thing."""
    import cv2
    if path:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise PrepareError(f"cannot read the check image {path}")
        if channels != 3:
            raise PrepareError(f"the model takes {channels} channels: a photo cannot feed it")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    rng = np.random.default_rng(1234)
    field = rng.random((6, 6, channels)).astype(np.float32)
    img = np.stack([cv2.resize(field[:, :, c], (size, size), interpolation=cv2.INTER_CUBIC)
                    for c in range(channels)], axis=2)
    img = np.clip(img * 200 + 20, 0, 255).astype(np.uint8)
    if channels == 3:
        cv2.ellipse(img, (size // 2, size // 2), (size // 5, size // 3), 0, 0, 360,
                    (240, 200, 170), -1)
    return img


def make_blob(img, width, height, spec=None):
    """img (RGB, 0..255) to a 1xCxHxW float32 blob the way a ModelSpec sidecar's 'input' says
    (docs/MODEL_SPEC.md); without a spec: RGB, x/255."""
    import cv2
    spec = spec or {}
    channels = img.shape[2]
    x = np.stack([cv2.resize(img[:, :, c], (width, height), interpolation=cv2.INTER_LINEAR)
                  for c in range(channels)], axis=2).astype(np.float32)
    if channels == 3 and spec.get("color_order", "RGB") == "BGR":
        x = x[:, :, ::-1]
    if spec.get("normalize_by_max", False):
        x = x / max(float(x.max()), 1e-6)
    else:
        x = x * float(spec.get("scale", 1.0 / 255))
    x = (x - np.array(spec.get("mean", [0.0] * channels), np.float32)) / np.array(
        spec.get("std", [1.0] * channels), np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def opencv_forward(net, blob, repeat=1, model=None):
    """Runs the net `repeat` times; returns the output and the median time in seconds. With the
    `model` of a graph of several inputs (a recurrent model's state inputs, RVM's r1i..r4i), the
    blob feeds the first, the others get zeros of their static shape (the state of a first
    frame), and the output is the graph's first."""
    inputs = data_inputs(model.graph) if model is not None else []
    name = None
    if len(inputs) > 1:
        net.setInput(blob, inputs[0].name)
        for i in inputs[1:]:
            net.setInput(np.zeros(dims_of(i), np.float32), i.name)
        name = model.graph.output[0].name
    else:
        net.setInput(blob)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = net.forward(name) if name else net.forward()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def compare_resized(out, ref):
    """Max and mean abs difference after resizing each map of `out` to the size of `ref`'s."""
    import cv2
    if out.ndim != 4 or ref.ndim != 4 or out.shape[:2] != ref.shape[:2]:
        raise PrepareError(f"the output's shape {out.shape} does not match the reference's "
                           f"{ref.shape}")
    resized = np.stack([np.stack([cv2.resize(c, (ref.shape[3], ref.shape[2]),
                                             interpolation=cv2.INTER_LINEAR) for c in o])
                        for o in out.astype(np.float32)])
    return float(np.abs(resized - ref).max()), float(np.abs(resized - ref).mean())


def opencv_load(path, what, error=PrepareError, hint=""):
    """Imports OpenCV's Python module (2 threads, as the machines here have 2 cores) and loads
    the ONNX file at `path`. Returns (cv2, net); raises `error` with OpenCV's own reason,
    naming the file as `what`."""
    try:
        import cv2
    except ImportError:
        raise error("the check needs OpenCV's Python module: apt-get install python3-opencv"
                    + hint) from None
    cv2.setNumThreads(2)
    try:
        net = cv2.dnn.readNetFromONNX(path)
        if net.empty():
            raise cv2.error("readNetFromONNX returned an empty network")
    except cv2.error as e:
        raise error(f"OpenCV {cv2.__version__} cannot load the {what}: "
                    f"{str(e).strip()}") from None
    return cv2, net


def check(path, source, prepared, log, spec=None, image=None, reference="auto", tolerance=None,
          reference_cache=None):
    """Loads the written file with OpenCV, runs it once and compares the output with a reference
    run. Raises PrepareError when OpenCV refuses the model or the outputs disagree.

    The reference is the SOURCE graph: run by OpenCV when it loads as is, else by the numpy
    evaluator. When the input size changed, the source runs at its own size and the prepared
    output is resized to compare: that measures the change of resolution, not an error, so the
    prepared graph is also run by numpy at the new size to show that OpenCV computes it exactly.
    """
    cv2, net = opencv_load(path, "prepared model",
                           hint=" (or pass --no-check to write without checking)")
    hw = input_hw(prepared)
    if hw is None:
        raise PrepareError("the prepared model's input size is not fixed; add fix_input_size "
                           "(--input-size) so that OpenCV can run it")
    dims = dims_of(data_inputs(prepared.graph)[0])
    img = check_image(image, channels=dims[1] or 3)
    blob = make_blob(img, hw[1], hw[0], spec)
    try:
        out, seconds = opencv_forward(net, blob, model=prepared)
    except cv2.error as e:
        raise PrepareError(f"OpenCV {cv2.__version__} loads the prepared model but its forward "
                           f"pass fails: {str(e).strip()}") from None
    if not np.all(np.isfinite(out)):
        raise PrepareError("OpenCV's forward pass of the prepared model gives NaN or infinity")
    log(f"  check: OpenCV {cv2.__version__} loads it; forward on 1x3x{hw[0]}x{hw[1]}: output "
        f"{'x'.join(map(str, out.shape))} in {seconds:.2f} s")
    result = {"forward_s": seconds}
    batch = dims[0] or 1
    if batch > 1:
        result.update(check_batch(cv2, net, prepared, img, hw, spec, batch, log, tolerance))
    if reference == "none":
        return result

    def exact(ref, how, took=""):
        if ref.shape != out.shape:
            raise PrepareError(f"the output's shape {out.shape} differs from the {how}'s "
                               f"{ref.shape}")
        diff = float(np.abs(out - ref).max())
        note = {"": "", "cached": " (reference from the cache)"}.get(
            took, f" (the reference took {took})")
        log(f"  check: max |OpenCV(prepared) - {how}| = {diff:.3g}{note}")
        # fp16 rounding and summation order give small differences; a wrong rewrite gives
        # differences of the order of the outputs themselves.
        limit = tolerance if tolerance is not None else 0.01 * max(1.0, float(np.abs(ref).max()))
        if diff > limit:
            raise PrepareError(f"OpenCV's output differs from the {how} by {diff:.3g} (more "
                               f"than {limit:.3g}): the prepared model does not compute what the "
                               "source does")
        return diff

    out_name = prepared.graph.output[0].name
    src_outputs = [o.name for o in source.graph.output]
    src_hw = input_hw(source, hw)
    src_blob = make_blob(img, src_hw[1], src_hw[0], spec)
    if reference in ("auto", "opencv") and src_outputs[0] == out_name and (
            reference == "opencv" or not auto_steps(source, running_opencv())):
        # The source itself in OpenCV (when it loads as is; a source that needs the fp16 or
        # pads rewrite cannot, and trying only makes OpenCV print errors): the most direct one.
        try:
            src_net = cv2.dnn.readNetFromONNX(np.frombuffer(source.SerializeToString(), np.uint8))
            ref, _ = opencv_forward(src_net, src_blob, model=source)
            if src_hw == hw:
                result["max_abs_diff"] = exact(ref, "OpenCV(source)")
                return result
        except cv2.error:
            if reference == "opencv":
                log("  check: no reference (OpenCV cannot run the source graph)")
                return result
    if reference == "opencv":
        return result
    if out_name not in src_outputs:
        log(f"  check: no reference (the source has no output '{out_name}')")
        return result
    ref, took = numpy_reference(source, out_name, src_blob, log, reference_cache)
    if ref is None:
        return result
    if src_hw == hw:
        result["max_abs_diff"] = exact(ref, "numpy(source)", took)
        return result
    max_diff, mean_diff = compare_resized(out, ref)
    log(f"  check: vs numpy(source) at its own size {src_hw[1]}x{src_hw[0]} ({took}), output "
        f"resized: max abs difference {max_diff:.3g}, mean {mean_diff:.3g} (the change of "
        "resolution, not an error)")
    result.update(resized_max_abs_diff=max_diff, resized_mean_abs_diff=mean_diff)
    # A batch-N graph means what it says only at batch N (its Resize sizes say N): numpy runs
    # it on N copies of the blob, and the first item is OpenCV's batch-1 output.
    ref, took = numpy_reference(prepared, out_name, np.repeat(blob, batch, axis=0), log)
    if ref is not None:
        result["max_abs_diff"] = exact(ref[:1], "numpy(prepared)", took)
    return result


def batch_pictures(img, n):
    """n different pictures made from the check picture (shifted, mirrored, darker), so that a
    graph mixing the items of a batch cannot pass by chance."""
    out = []
    for k in range(n):
        x = np.roll(img, k * img.shape[1] // (n + 1), axis=1)
        x = x[:, ::-1] if k % 2 else x
        out.append(np.ascontiguousarray(x * (1 - 0.15 * k / n)).astype(np.uint8))
    return out


def check_batch(cv2, net, prepared, img, hw, spec, n, log, tolerance=None):
    """A model prepared for batch n (rewrites fix_batch) runs n different pictures in one
    forward; each item must be what a batch-1 forward of the same file gives for that picture
    (which the rest of the check compares with the source)."""
    blobs = [make_blob(x, hw[1], hw[0], spec) for x in batch_pictures(img, n)]
    try:
        singles = [opencv_forward(net, b, model=prepared)[0] for b in blobs]
        out, seconds = opencv_forward(net, np.concatenate(blobs), model=prepared)
    except cv2.error as e:
        raise PrepareError(f"OpenCV {cv2.__version__} runs the prepared model at batch 1 but "
                           f"not at batch {n}: {str(e).strip()}") from None
    if out.shape[0] != n or out.shape[1:] != singles[0].shape[1:]:
        raise PrepareError(f"at batch {n} the output is {'x'.join(map(str, out.shape))}, at "
                           f"batch 1 {'x'.join(map(str, singles[0].shape))}")
    diffs = [float(np.abs(out[k] - singles[k][0]).max()) for k in range(n)]
    log(f"  check: batch {n} ({n} different pictures) in one forward, {seconds:.2f} s: max "
        f"|item - its batch-1 forward| = {max(diffs):.3g}")
    for k, diff in enumerate(diffs):
        limit = tolerance if tolerance is not None else \
            0.01 * max(1.0, float(np.abs(singles[k]).max()))
        if diff > limit:
            raise PrepareError(f"item {k} of a batch of {n} differs from its batch-1 forward by "
                               f"{diff:.3g} (more than {limit:.3g}): the batched graph mixes or "
                               "loses the frames")
    return {"batch": n, "batch_forward_s": seconds, "batch_max_abs_diff": max(diffs)}


def program_opencv(exe):
    """The (major, minor) of the OpenCV DNN library a program is linked with, read from ldd
    (libopencv_dnn.so.410 = 4.10, .406 = 4.6); None when that cannot be told."""
    try:
        r = subprocess.run(["ldd", exe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"libopencv_dnn\.so\.(\d+)(\d\d)\b", r.stdout)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_with_program(path, prepared, program, sidecar, opencv, log, image=None,
                       reference="auto", tolerance=None):
    """The check for an OpenCV other than the cv2 here: `program` (unetseg-segment built against
    that OpenCV) segments the check picture with the written model and its sidecar:
        PROGRAM --model DIR/model.onnx DIR/input.png --npy DIR/map.npy
    (model.onnx a link to the written file, model.json a copy of the sidecar). Its exit status
    and a finite map prove that OpenCV loads and runs the model. The picture is written at the
    model's input size, so that the program's resize is the identity and the blob is the one
    make_blob makes; for a 'probability' output the map is also compared with the numpy
    evaluator's run of the prepared graph (min-max normalised when the sidecar says so)."""
    v = version_text(opencv)
    exe = program if os.sep in program else shutil.which(program)
    if not exe or not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        raise PrepareError(f"--check-with {program}: no such executable program")
    linked = program_opencv(exe)
    if linked is not None and linked != opencv:
        raise PrepareError(f"--check-with {program} runs OpenCV {version_text(linked)} "
                           f"(libopencv_dnn), not {v}: give the unetseg-segment built against "
                           f"OpenCV {v}")
    try:
        with open(sidecar) as f:
            side = json.load(f)
        inp, outp = side.get("input", {}), side.get("output", {})
        w, h = int(inp["width"]), int(inp["height"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise PrepareError(f"cannot read the input size from the sidecar {sidecar}: "
                           f"{type(e).__name__}: {e}") from None
    hw = input_hw(prepared)
    if hw is not None and hw != (h, w):
        raise PrepareError(f"the sidecar {sidecar} says input {w}x{h}, the prepared model's "
                           f"input is {hw[1]}x{hw[0]}")
    try:
        import cv2
    except ImportError:
        raise PrepareError("the check picture needs OpenCV's Python module (any version): "
                           "apt-get install python3-opencv") from None
    img = check_image(image)
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    with tempfile.TemporaryDirectory(prefix="prepare-check.") as d:
        model_path = os.path.join(d, "model.onnx")
        os.symlink(os.path.abspath(path), model_path)
        shutil.copyfile(sidecar, os.path.join(d, "model.json"))
        png, npy = os.path.join(d, "input.png"), os.path.join(d, "map.npy")
        cv2.imwrite(png, cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        cmd = [exe, "--model", model_path, png, "--npy", npy]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PrepareError(f"--check-with {program} did not run: {e}") from None
        said = [line.strip() for line in (r.stderr + r.stdout).splitlines() if line.strip()]
        if r.returncode != 0:
            raise PrepareError(f"OpenCV {v} ({program}) refuses the prepared model (exit "
                               f"{r.returncode}): {' | '.join(said[-4:]) or 'no message'}")
        try:
            got = np.load(npy).astype(np.float32)
        except (OSError, ValueError) as e:
            raise PrepareError(f"--check-with {program} wrote no readable map: {e}") from None
    if not np.all(np.isfinite(got)):
        raise PrepareError(f"OpenCV {v}'s forward pass of the prepared model gives NaN or "
                           "infinity")
    timing = next((line for line in reversed(said) if "forward" in line), "")
    log(f"  check: OpenCV {v} ({program}) loads and runs it: map "
        f"{'x'.join(map(str, got.shape))}, values {got.min():.3g}..{got.max():.3g}"
        + (f"\n    {timing}" if timing else ""))
    result = {"checked_with": program}
    m = re.search(r"forward ([0-9.]+) ms", timing)
    if m:
        result["forward_s"] = float(m.group(1)) / 1000
    if reference == "none":
        return result
    if outp.get("kind") != "probability":
        log(f"  check: no numpy comparison (done for 'probability' outputs; this sidecar's "
            f"output: {outp.get('kind')})")
        return result
    names = [o.name for o in prepared.graph.output]
    out_name = outp.get("name") or names[min(int(outp.get("index", 0)), len(names) - 1)]
    if out_name not in names:
        raise PrepareError(f"the sidecar reads output '{out_name}'; the model's outputs are: "
                           f"{', '.join(names)}")
    blob = make_blob(small, w, h, inp)
    ref, took = numpy_reference(prepared, out_name, blob, log)
    if ref is None:
        return result
    ref = ref.reshape(ref.shape[-2:]) if ref.size == got.size else None
    if ref is None:
        raise PrepareError(f"the map's shape {got.shape} does not match the model output's")
    if outp.get("minmax", False):
        ref = (ref - ref.min()) / max(float(ref.max() - ref.min()), 1e-12)
    diff = float(np.abs(got - ref).max())
    limit = tolerance if tolerance is not None else 0.01
    log(f"  check: max |OpenCV {v}(prepared) - numpy(prepared)| = {diff:.3g} (the reference "
        f"took {took})")
    if diff > limit:
        raise PrepareError(f"OpenCV {v}'s map differs from the numpy run of the prepared graph by "
                           f"{diff:.3g} (more than {limit:.3g})")
    result["max_abs_diff"] = diff
    return result


def not_checked_notice(out_path, opencv, running):
    v = version_text(opencv)
    here = f"OpenCV {version_text(running)}" if running else "no OpenCV"
    stem = os.path.splitext(out_path)[0]
    return (f"  NOT CHECKED: OpenCV {v} has not loaded {out_path} (the cv2 here is {here}, "
            f"which proves nothing about {v}). Check it with unetseg-segment built against "
            f"OpenCV {v} (e.g. build-opencv{v}/tools/unetseg-segment), the sidecar {stem}.json "
            f"beside the model:\n"
            f"      unetseg-segment --model {out_path} IMAGE --npy MAP.npy\n"
            f"    or prepare again with --check-with PROGRAM --spec SIDECAR.json")
