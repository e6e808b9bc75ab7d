#!/usr/bin/python3
"""Rewrite an ONNX model into ONNX that OpenCV DNN (4.6 by default) loads, and prove it.

OpenCV 4.6's ONNX importer refuses graphs that other runtimes accept. The rewrites here are the
ones the project's real models need, each exact (the rewritten graph computes what the original
one defines). Which of them a model needs depends on the OpenCV version it is prepared for
(--for-opencv X.Y, default the version of the cv2 module that runs this; see plan_steps):

  fp16_to_fp32             fp16 initializers/constants become fp32 and the Cast nodes between
                           fp16 and fp32 go ("Unsupported data type: FLOAT16").
  fix_conv_transpose_pads  asymmetric ConvTranspose pads (e.g. [0,0,1,1], TensorFlow's 'SAME')
                           become symmetric pads plus a Slice that crops the extra rows/columns
                           ("Unsupported asymmetric padding").
  fix_input_size:N|WxH     fixes the input size and rescales the Resize target sizes that the
                           exporter froze for the original size (refused, with the sizes that
                           would work, when a target size does not scale to a whole number).
  keep_output:NAME         keeps only that graph output and drops what only fed the others
                           (U2-Net/ISNet side outputs d1..d6: less work per frame).

The nodes are always put in topological order on loading (producers first: ONNX requires it,
OpenCV 4.10 refuses a file without it), whatever steps run, even none.

After writing, the result is loaded with cv2.dnn.readNetFromONNX and run once; the output is
compared with a reference run of the SOURCE graph (OpenCV itself when it loads the source, else
the small numpy evaluator below), and the difference is printed. A model OpenCV cannot load is
never written. When the target OpenCV is not the cv2 that runs this, cv2 proves nothing: the
check then runs --check-with PROGRAM (unetseg-segment built against the target OpenCV), or is
skipped with a notice saying so.

Runs with Debian's /usr/bin/python3 and python3-onnx, python3-numpy, python3-opencv.
"""

import argparse
import hashlib
import heapq
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

try:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:
    sys.exit(f"prepare.py: error: {e}: run it with Debian's /usr/bin/python3 and python3-onnx, "
             "python3-numpy (and python3-opencv for the check) installed")

# Bump when a rewrite changes what it writes: fetch.py re-prepares cached models when it changes.
VERSION = "1"

FLOAT16 = TensorProto.FLOAT16
FLOAT = TensorProto.FLOAT
INT32_MAX = 2**31 - 1  # "to the end" for Slice; OpenCV reads int64 indices as int32


class PrepareError(Exception):
    """A failure with a message meant for the user (what failed, and what to do)."""


# ---------------------------------------------------------------------------------------------
# Loading

def load_model(path, log=None):
    """Reads and validates an ONNX file, turning every way it can be broken into a clear message.
    The nodes come back in topological order (logged when `log` is given and they were not)."""
    if not os.path.exists(path):
        raise PrepareError(f"{path}: no such file")
    if os.path.isdir(path):
        raise PrepareError(f"{path} is a directory, not an ONNX file")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise PrepareError(f"{path} is empty (0 bytes): a failed download? Fetch it again.")
    try:
        with warnings.catch_warnings():  # protobuf warns about garbage; the message below says it
            warnings.simplefilter("ignore")
            model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise PrepareError(f"{path} is not an ONNX model (it does not parse: {e}). A corrupt or "
                           "truncated download? Fetch it again and check its sha256.") from None
    # A truncated file can still parse when the cut falls between two fields; the checker then
    # finds the graph incomplete (missing weights, dangling inputs).
    if not model.graph.node:
        raise PrepareError(f"{path} is not an ONNX model (no graph nodes): a corrupt or truncated "
                           "file? Fetch it again and check its sha256.")
    # Converters (e.g. onnxruntime's fp16 tool, as in ISNet) append nodes out of order; ONNX
    # requires, and OpenCV's importer assumes, producers before consumers (OpenCV 4.10 refuses
    # ISNet's unsorted file: "Node [Conv]:(/conv_in/Conv) parse error"). Always done, so that
    # every written model is sorted even when no step runs.
    early = topological_sort(model.graph)
    if early and log:
        log(f"  topological order: {early} of {len(model.graph.node)} nodes read a value made "
            "further down the file: sorted producers first (ONNX requires it; OpenCV 4.10 "
            "refuses the file otherwise)")
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise PrepareError(f"{path} is not a valid ONNX model ({str(e).strip()}). A corrupt or "
                           "truncated file? Fetch it again and check its sha256.") from None
    return model


def topological_sort(graph):
    """Orders the nodes producers-first, keeping the file's order wherever it already is.
    Returns how many nodes read a value that a later node makes (0: already sorted, or a cycle
    left as it is)."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    nodes = list(graph.node)
    waiting = [sum(1 for i in set(n.input) if i not in known) for n in nodes]
    readers = {}
    for k, n in enumerate(nodes):
        for i in set(n.input):
            if i not in known:
                readers.setdefault(i, []).append(k)
    ready = [k for k, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for out in nodes[k].output:
            for r in readers.pop(out, []):
                waiting[r] -= 1
                if waiting[r] == 0:
                    heapq.heappush(ready, r)
    if len(order) != len(nodes):
        return 0  # a cycle or a missing input: leave the order, the checker names the culprit
    made_at = {out: k for k, n in enumerate(nodes) for out in n.output}
    early = sum(1 for k, n in enumerate(nodes) if any(made_at.get(i, -1) > k for i in n.input))
    if order != list(range(len(nodes))):
        del graph.node[:]
        graph.node.extend(nodes[k] for k in order)
    return early


def opset_of(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return 1


def data_inputs(graph):
    """The graph inputs that are fed at run time (old IR versions also list the initializers)."""
    weights = {t.name for t in graph.initializer}
    return [i for i in graph.input if i.name not in weights]


def dims_of(value_info):
    """A value's shape as a list: ints where fixed, None where symbolic or unknown."""
    return [d.dim_value if d.HasField("dim_value") else None
            for d in value_info.type.tensor_type.shape.dim]


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def set_attr(node, name, value):
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def producers(graph):
    return {out: n for n in graph.node for out in n.output}


def constant_value(graph, name):
    """The value of a tensor that is an initializer or a Constant node's output, else None."""
    for t in graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    node = producers(graph).get(name)
    if node is not None and node.op_type == "Constant" and len(node.attribute) == 1:
        a = node.attribute[0]
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name in ("value_ints", "value_floats", "value_int", "value_float"):
            return np.array(helper.get_attribute_value(a))
    return None


def unique_name(graph, base):
    taken = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output}
    taken |= {i.name for i in graph.input}
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


# ---------------------------------------------------------------------------------------------
# The rewrites. Each takes the model (changed in place) and its argument, and returns a line
# saying what it did.

def fp16_to_fp32(model, arg=None):
    graph = model.graph
    if any(n.op_type in ("If", "Loop", "Scan") for n in graph.node):
        raise PrepareError("the graph has subgraphs (If/Loop/Scan), which this tool does not "
                           "rewrite (and OpenCV 4.6 does not run)")
    converted = 0
    for i, t in enumerate(graph.initializer):
        if t.data_type == FLOAT16:
            graph.initializer[i].CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
            converted += 1
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == FLOAT16:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32),
                                                     a.t.name))
                converted += 1
        if node.op_type == "Cast" and attr(node, "to") == FLOAT16:
            set_attr(node, "to", FLOAT)
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.type.tensor_type.elem_type == FLOAT16:
            vi.type.tensor_type.elem_type = FLOAT

    # Every float is now fp32, so a Cast to fp32 of a float tensor does nothing: bypass it.
    # Types come from ONNX shape inference (value_info may be stale after the edits above).
    del graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in list(inferred.graph.value_info) + list(graph.input) + list(graph.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    removed = 0
    for node in [n for n in graph.node if n.op_type == "Cast"]:
        if attr(node, "to") == FLOAT and types.get(node.input[0]) == FLOAT:
            removed += bypass(graph, node)

    left = [t.name for t in graph.initializer if t.data_type == FLOAT16]
    left += [n.name or n.op_type for n in graph.node for a in n.attribute
             if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == FLOAT16]
    if left:
        raise PrepareError(f"fp16 values left after the conversion: {', '.join(left[:5])}")
    return f"fp16_to_fp32: {converted} fp16 tensors made fp32, {removed} Cast nodes removed"


def bypass(graph, node):
    """Removes a node whose output equals its input; returns 1 if removed, 0 if kept."""
    x, y = node.input[0], node.output[0]
    outputs = {o.name for o in graph.output}
    inputs = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    if y not in outputs:
        # Consumers of y read x instead.
        for n in graph.node:
            for i, name in enumerate(n.input):
                if name == y:
                    n.input[i] = x
    elif x not in outputs and x not in inputs:
        # y is a graph output: keep its name, so the node that makes x makes y instead.
        for n in graph.node:
            for i, name in enumerate(n.input):
                if name == x:
                    n.input[i] = y
            for i, name in enumerate(n.output):
                if name == x:
                    n.output[i] = y
    else:
        return 0  # x and y both named from outside the graph: leave the (cheap) node be
    graph.node.remove(node)
    return 1


def fix_conv_transpose_pads(model, arg=None):
    graph = model.graph
    opset = opset_of(model)
    # Output sizes of the original nodes (to write the crop with positive ends, which every
    # OpenCV version reads the same way); unknown sizes fall back to negative ends.
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {vi.name: dims_of(vi) for vi in list(inferred.graph.value_info) + list(graph.output)}
    fixed = 0
    for node in [n for n in graph.node if n.op_type == "ConvTranspose"]:
        pads = list(attr(node, "pads", []))
        auto_pad = attr(node, "auto_pad", b"NOTSET")
        if auto_pad not in (b"NOTSET", "NOTSET"):
            raise PrepareError(f"ConvTranspose {node.name}: auto_pad={auto_pad.decode()} is not "
                               "handled; export the model with explicit pads")
        k = len(pads) // 2
        begin, end = pads[:k], pads[k:]
        if begin == end:
            continue
        sym = [min(b, e) for b, e in zip(begin, end)]
        set_attr(node, "pads", sym + sym)
        # With the smaller pad on both sides the output has (b - m) more leading and (e - m)
        # more trailing rows/columns than the original: crop exactly those.
        starts = [b - m for b, m in zip(begin, sym)]
        final = shapes.get(node.output[0], [None] * (k + 2))[2:]
        if len(final) == k and all(final):
            ends = [s + f for s, f in zip(starts, final)]
        else:
            ends = [-(e - m) if e > m else INT32_MAX for e, m in zip(end, sym)]
        axes = list(range(2, 2 + k))
        out = node.output[0]
        node.output[0] = unique_name(graph, out + "_uncropped")
        name = unique_name(graph, (node.name or out) + "_crop")
        if opset >= 10:
            consts = []
            for what, values in (("starts", starts), ("ends", ends), ("axes", axes)):
                cname = unique_name(graph, f"{name}_{what}")
                graph.initializer.append(
                    numpy_helper.from_array(np.array(values, dtype=np.int64), cname))
                consts.append(cname)
            crop = helper.make_node("Slice", [node.output[0]] + consts, [out], name=name)
        else:
            crop = helper.make_node("Slice", [node.output[0]], [out], name=name,
                                    starts=starts, ends=ends, axes=axes)
        graph.node.insert(list(graph.node).index(node) + 1, crop)
        fixed += 1
    del graph.value_info[:]
    return f"fix_conv_transpose_pads: {fixed} ConvTranspose nodes made symmetric plus a crop"


def parse_size(text):
    """'320' -> (320, 320); '320x240' -> (width 320, height 240)."""
    try:
        if "x" in text.lower():
            w, h = (int(v) for v in text.lower().split("x"))
        else:
            w = h = int(text)
    except ValueError:
        raise PrepareError(f"bad input size '{text}': give N or WxH, e.g. 320 or 512x384") from None
    if not (1 <= w <= 8192 and 1 <= h <= 8192):
        raise PrepareError(f"bad input size '{text}': width and height must be 1..8192")
    return w, h


def resize_size_constants(graph):
    """Finds the Resize target sizes that are constants frozen by the exporter.

    Returns (resize node, sizes tensor name, constant tensor name, positions of height and width
    in that constant). Two forms occur: the whole sizes tensor is a constant [N, C, H, W]; or it is
    Concat(Shape(x)[0:2], constant [H, W]) (PyTorch's F.interpolate(x, size=y.shape[2:]) traced
    at one input size, as in U2-Net/ISNet). Sizes computed from Shape at run time need nothing.
    """
    found = []
    prod = producers(graph)
    for node in graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        sizes = node.input[3]
        value = constant_value(graph, sizes)
        if value is not None and value.size == 4:
            found.append((node, sizes, sizes, (2, 3)))
            continue
        concat = prod.get(sizes)
        if concat is not None and concat.op_type == "Concat":
            last = concat.input[-1]
            value = constant_value(graph, last)
            if value is not None and value.size == 2:
                found.append((node, sizes, last, (0, 1)))
    return found


def fix_input_size(model, arg):
    graph = model.graph
    w, h = parse_size(str(arg))
    inputs = data_inputs(graph)
    if len(inputs) != 1:
        raise PrepareError(f"fix_input_size needs a model with one input; this one has "
                           f"{len(inputs)}: {', '.join(i.name for i in inputs)}")
    dims = dims_of(inputs[0])
    if len(dims) != 4:
        raise PrepareError(f"fix_input_size needs an N x C x H x W input; '{inputs[0].name}' has "
                           f"{len(dims)} dimensions")
    h0, w0 = dims[2], dims[3]
    frozen = resize_size_constants(graph)
    if frozen and not (h0 and w0):
        raise PrepareError("the model has Resize sizes frozen for some input size, but its input "
                           "size is not fixed in the graph, so they cannot be rescaled")

    # A target size v frozen at side s0 becomes v * s / s0, which must be a whole number: that
    # holds for every v exactly when s is a multiple of s0 / gcd(s0, v) for every v.
    values = {const: constant_value(graph, const).astype(np.int64) for _, _, const, _ in frozen}
    for node, _, const, pos in frozen:
        v = values[const]
        for axis, side, s, s0, what in ((0, pos[0], h, h0, "height"), (1, pos[1], w, w0, "width")):
            if (int(v[side]) * s) % s0:
                step = math.lcm(*(s0 // math.gcd(s0, int(values[c][p[axis]]))
                                  for _, _, c, p in frozen))
                near = sorted({max(step, s // step * step), (s // step + 1) * step})
                raise PrepareError(
                    f"cannot fix the input {what} to {s}: Resize '{node.name or node.output[0]}' "
                    f"targets {int(v[side])} at the model's {what} {s0}, which would be "
                    f"{int(v[side]) * s / s0:g} at {s}. Input {what}s that keep every Resize "
                    f"exact are multiples of {step} (nearest: {', '.join(map(str, near))})")

    # Each distinct constant gets a rescaled copy (a new initializer), so constants shared with
    # other nodes keep their meaning there.
    done = {}
    prod = producers(graph)
    for node, sizes, const, pos in frozen:
        if const not in done:
            v = values[const].copy()
            v[pos[0]] = v[pos[0]] * h // h0
            v[pos[1]] = v[pos[1]] * w // w0
            done[const] = unique_name(graph, f"{const}_{w}x{h}")
            graph.initializer.append(numpy_helper.from_array(v.astype(np.int64), done[const]))
        user = node if sizes == const else prod[sizes]
        for i, name in enumerate(user.input):
            if name == const:
                user.input[i] = done[const]
    remove_unused(graph)

    shape = data_inputs(graph)[0].type.tensor_type.shape  # (remove_unused rebuilt graph.input)
    shape.dim[2].Clear()
    shape.dim[2].dim_value = h
    shape.dim[3].Clear()
    shape.dim[3].dim_value = w
    # Recorded shapes inside the graph are those of the old size: drop them. The outputs keep
    # their rank (OpenCV wants one) with the spatial sizes unknown, unless ONNX infers them.
    del graph.value_info[:]
    for out in graph.output:
        for i, d in enumerate(out.type.tensor_type.shape.dim):
            if i >= 2:
                d.Clear()
                d.dim_param = f"{out.name}_dim{i}"
    inferred = {o.name: o for o in onnx.shape_inference.infer_shapes(model).graph.output}
    for out in graph.output:
        got = inferred[out.name].type.tensor_type.shape.dim
        if len(got) == len(out.type.tensor_type.shape.dim) and all(d.dim_value for d in got):
            out.type.tensor_type.shape.CopyFrom(inferred[out.name].type.tensor_type.shape)
    return (f"fix_input_size: input {w}x{h} (was {w0}x{h0}), "
            f"{len(done)} frozen Resize target sizes rescaled")


def keep_output(model, name):
    graph = model.graph
    names = [o.name for o in graph.output]
    if name not in names:
        raise PrepareError(f"keep_output: the model has no output '{name}'; its outputs are: "
                           f"{', '.join(names)}")
    keep = [o for o in graph.output if o.name == name]
    del graph.output[:]
    graph.output.extend(keep)
    before = len(graph.node)
    remove_unused(graph)
    return (f"keep_output: kept '{name}' of {len(names)} outputs, "
            f"{before - len(graph.node)} nodes dropped")


def remove_unused(graph):
    """Drops the nodes, initializers and value_info that no graph output depends on."""
    needed = {o.name for o in graph.output}
    data_names = {i.name for i in data_inputs(graph)}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
            for a in node.attribute:  # subgraphs read outer names too
                if a.type == onnx.AttributeProto.GRAPH:
                    needed.update(i for n in a.g.node for i in n.input)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    weights = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(weights)
    weight_names = {t.name for t in weights}
    inputs = [i for i in graph.input if i.name in weight_names or i.name in data_names]
    del graph.input[:]
    graph.input.extend(inputs)
    infos = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(infos)


STEPS = {
    "fp16_to_fp32": fp16_to_fp32,
    "fix_conv_transpose_pads": fix_conv_transpose_pads,
    "fix_input_size": fix_input_size,
    "keep_output": keep_output,
}
STEPS_WITH_ARG = {"fix_input_size", "keep_output"}


def parse_step(step):
    name, _, arg = step.partition(":")
    if name not in STEPS:
        raise PrepareError(f"unknown preparation step '{step}'; known: "
                           "fp16_to_fp32, fix_conv_transpose_pads, fix_input_size:N|WxH, "
                           "keep_output:NAME")
    if (name in STEPS_WITH_ARG) != bool(arg):
        raise PrepareError(f"step '{step}': {name} " +
                           ("needs an argument (NAME:ARG)" if name in STEPS_WITH_ARG
                            else "takes no argument"))
    return name, arg or None


# ---------------------------------------------------------------------------------------------
# The target OpenCV version

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
    if has_asymmetric_conv_transpose(model):
        plan.append(("fix_conv_transpose_pads", True,
                     "asymmetric ConvTranspose pads, which OpenCV 4.6 and 4.10 both refuse"))
    return plan


def auto_steps(model, opencv=None):
    """The rewrites this model needs for the target OpenCV (major, minor; None: the cv2 that runs
    this), found by looking at it. See plan_steps for which version needs what."""
    return [step for step, needed, _ in plan_steps(model, opencv) if needed]


def apply_steps(model, steps, log):
    for step in steps:
        name, arg = parse_step(step)
        try:
            log("  " + STEPS[name](model, arg))
        except PrepareError as e:
            raise PrepareError(f"step {step}: {e}") from None
        except Exception as e:  # a graph the rewrite did not expect
            raise PrepareError(f"step {step} failed on this graph: "
                               f"{type(e).__name__}: {e}") from None
    return model


def steps_digest(steps):
    """What fetch.py records to know whether a cached model is still what these steps make."""
    return hashlib.sha256(("prepare " + VERSION + "\n" + "\n".join(steps)).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# The reference: a small numpy evaluator of ONNX graphs, plain and slow, written from the ONNX
# operator definitions. It runs the SOURCE graph as ONNX defines it (fp16 tensors stay fp16 and
# are computed in fp32, asymmetric pads, frozen sizes) to compare OpenCV's result against.

class Unsupported(Exception):
    pass


def _conv(x, w, b, strides, pads, dilations, group):
    n, cin, hgt, wid = x.shape
    cout, cin_g, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (x.shape[2] - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (x.shape[3] - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    out = np.zeros((n, cout, oh, ow), dtype=np.float32)
    cout_g = cout // group
    # One matrix product per kernel tap and group: the input window for a tap is a strided view.
    for g in range(group):
        xg = x[:, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cout_g:(g + 1) * cout_g]
        for i in range(kh):
            for j in range(kw):
                y0, x0 = i * dilations[0], j * dilations[1]
                win = xg[:, :, y0:y0 + strides[0] * (oh - 1) + 1:strides[0],
                         x0:x0 + strides[1] * (ow - 1) + 1:strides[1]]
                out[:, g * cout_g:(g + 1) * cout_g] += np.einsum(
                    "oc,nchw->nohw", wg[:, :, i, j], win, optimize=True)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _conv_transpose(x, w, b, strides, pads, dilations, group, output_padding):
    n, cin, hgt, wid = x.shape
    _, cout_g, kh, kw = w.shape
    cin_g = cin // group
    full_h = strides[0] * (hgt - 1) + output_padding[0] + (kh - 1) * dilations[0] + 1
    full_w = strides[1] * (wid - 1) + output_padding[1] + (kw - 1) * dilations[1] + 1
    out = np.zeros((n, cout_g * group, full_h, full_w), dtype=np.float32)
    # Each input pixel scatters its kernel into the output: one product per tap.
    for g in range(group):
        xg = x[:, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cin_g:(g + 1) * cin_g]
        for i in range(kh):
            for j in range(kw):
                y0, x0 = i * dilations[0], j * dilations[1]
                out[:, g * cout_g:(g + 1) * cout_g, y0:y0 + strides[0] * (hgt - 1) + 1:strides[0],
                    x0:x0 + strides[1] * (wid - 1) + 1:strides[1]] += np.einsum(
                    "co,nchw->nohw", wg[:, :, i, j], xg, optimize=True)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out[:, :, pads[0]:full_h - pads[2], pads[1]:full_w - pads[3]]


def _max_pool(x, kernel, strides, pads, ceil_mode):
    n, c, hgt, wid = x.shape
    out_sizes = []
    for size, k, s, pb, pe in zip((hgt, wid), kernel, strides, pads[:2], pads[2:]):
        span = size + pb + pe - k
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= size + pb:  # a window must start inside the input
            o -= 1
        out_sizes.append(o)
    oh, ow = out_sizes
    need_h = (oh - 1) * strides[0] + kernel[0]
    need_w = (ow - 1) * strides[1] + kernel[1]
    xp = np.full((n, c, max(need_h, hgt + pads[0]), max(need_w, wid + pads[1])), -np.inf,
                 dtype=x.dtype)
    xp[:, :, pads[0]:pads[0] + hgt, pads[1]:pads[1] + wid] = x
    out = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            out = np.maximum(out, xp[:, :, i:i + strides[0] * (oh - 1) + 1:strides[0],
                                     j:j + strides[1] * (ow - 1) + 1:strides[1]])
    return out


def _resize_axis(x, axis, out_size, scale, mode, coord, nearest_mode):
    """Resizes one axis as ONNX Resize/Upsample define it (scale = output/input)."""
    size = x.shape[axis]
    if out_size == size and scale == 1.0:
        return x
    o = np.arange(out_size, dtype=np.float64)
    if coord == "half_pixel":
        src = (o + 0.5) / scale - 0.5
    elif coord == "pytorch_half_pixel":
        src = (o + 0.5) / scale - 0.5 if out_size > 1 else np.zeros_like(o)
    elif coord == "align_corners":
        src = o * (size - 1) / (out_size - 1) if out_size > 1 else np.zeros_like(o)
    elif coord == "asymmetric":
        src = o / scale
    else:
        raise Unsupported(f"Resize coordinate_transformation_mode {coord}")
    if mode == "nearest":
        if nearest_mode == "floor":
            idx = np.floor(src)
        elif nearest_mode == "ceil":
            idx = np.ceil(src)
        elif nearest_mode == "round_prefer_ceil":
            idx = np.floor(src + 0.5)
        else:  # round_prefer_floor, the default
            idx = np.ceil(src - 0.5)
        return np.take(x, np.clip(idx, 0, size - 1).astype(np.int64), axis=axis)
    if mode != "linear":
        raise Unsupported(f"Resize mode {mode}")
    src = np.clip(src, 0, size - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    frac = (src - lo).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = out_size
    frac = frac.reshape(shape)
    a, b = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
    return (a * (1 - frac) + b * frac).astype(x.dtype)


def _resize(x, sizes, scales, node):
    mode = attr(node, "mode", b"nearest").decode()
    coord = attr(node, "coordinate_transformation_mode", b"half_pixel").decode()
    nearest_mode = attr(node, "nearest_mode", b"round_prefer_floor").decode()
    if node.op_type == "Upsample":
        coord = "asymmetric"
        nearest_mode = "floor"
    for axis in range(x.ndim):
        if sizes is not None:
            out, scale = int(sizes[axis]), sizes[axis] / x.shape[axis]
        else:
            out, scale = int(math.floor(x.shape[axis] * scales[axis])), float(scales[axis])
        x = _resize_axis(x, axis, out, scale, mode, coord, nearest_mode)
    return x


def _slice(x, starts, ends, axes, steps):
    axes = list(range(len(starts))) if axes is None else [a % x.ndim for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a] = slice(int(max(min(s, 2**62), -2**62)), int(max(min(e, 2**62), -2**62)), int(st))
    return x[tuple(index)]


ONNX_TO_NUMPY = {
    TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64,
    TensorProto.INT64: np.int64, TensorProto.INT32: np.int32, TensorProto.UINT8: np.uint8,
    TensorProto.INT8: np.int8, TensorProto.BOOL: np.bool_,
}


def _run_node(node, ins, opset):
    op = node.op_type
    f32 = [v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype == np.float16 else v
           for v in ins]
    if op in ("Conv", "ConvTranspose"):
        x, w = f32[0], f32[1]
        if x.ndim != 4:
            raise Unsupported(f"{op} on a {x.ndim}-D tensor")
        b = f32[2] if len(f32) > 2 and f32[2] is not None else None
        strides = attr(node, "strides", [1, 1])
        dilations = attr(node, "dilations", [1, 1])
        pads = attr(node, "pads", [0, 0, 0, 0])
        if attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
            raise Unsupported(f"{op} auto_pad")
        if op == "Conv":
            return [_conv(x, w, b, strides, pads, dilations, attr(node, "group", 1))]
        if attr(node, "output_shape") is not None:
            raise Unsupported("ConvTranspose output_shape")
        return [_conv_transpose(x, w, b, strides, pads, dilations, attr(node, "group", 1),
                                attr(node, "output_padding", [0, 0]))]
    if op == "MaxPool":
        if len(node.output) > 1 or attr(node, "dilations", [1, 1]) != [1, 1]:
            raise Unsupported("MaxPool with indices or dilations")
        return [_max_pool(f32[0], attr(node, "kernel_shape"), attr(node, "strides", [1, 1]),
                          attr(node, "pads", [0, 0, 0, 0]), attr(node, "ceil_mode", 0))]
    if op in ("Resize", "Upsample"):
        if node.op_type == "Upsample":
            scales = f32[1] if len(f32) > 1 else np.array(attr(node, "scales"))
            return [_resize(f32[0], None, scales, node)]
        sizes = f32[3] if len(f32) > 3 and f32[3] is not None and f32[3].size else None
        scales = f32[2] if len(f32) > 2 and f32[2] is not None and f32[2].size else None
        if opset == 10:
            scales, sizes = f32[1], None
        return [_resize(f32[0], sizes, scales, node)]
    simple = {
        "Relu": lambda a: np.maximum(a, 0), "Sigmoid": lambda a: 0.5 * (1 + np.tanh(0.5 * a)),
        "Tanh": np.tanh, "Exp": np.exp, "Sqrt": np.sqrt, "Neg": np.negative,
        "Identity": lambda a: a,
        "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
    }
    if op in simple:
        return [np.asarray(simple[op](*f32))]
    if op == "Concat":
        return [np.concatenate(f32, axis=attr(node, "axis"))]
    if op == "Shape":
        return [np.array(ins[0].shape, dtype=np.int64)]
    if op == "Slice":
        if opset < 10:
            return [_slice(ins[0], attr(node, "starts"), attr(node, "ends"), attr(node, "axes"),
                           None)]
        extra = [ins[i] if len(ins) > i else None for i in (3, 4)]
        return [_slice(ins[0], ins[1], ins[2], *extra)]
    if op == "Cast":
        to = attr(node, "to")
        if to not in ONNX_TO_NUMPY:
            raise Unsupported(f"Cast to type {to}")
        return [ins[0].astype(ONNX_TO_NUMPY[to])]
    if op == "Constant":
        a = node.attribute[0]
        return [numpy_helper.to_array(a.t) if a.name == "value" else
                np.array(helper.get_attribute_value(a))]
    if op == "Softmax" and opset >= 13:
        e = np.exp(f32[0] - f32[0].max(axis=attr(node, "axis", -1), keepdims=True))
        return [e / e.sum(axis=attr(node, "axis", -1), keepdims=True)]
    raise Unsupported(f"op {op}")


def reference_run(model, feeds):
    """Runs a graph with numpy; returns {output name: array}. Raises Unsupported for ops outside
    the small set the project's models use."""
    graph = model.graph
    opset = opset_of(model)
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    values.update(feeds)
    # Free each value after its last reader (ISNet at 1024 holds gigabytes otherwise).
    last_use = {}
    for k, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = k
    outputs = {o.name for o in graph.output}
    for k, node in enumerate(graph.node):
        ins = [values[i] if i else None for i in node.input]
        results = _run_node(node, ins, opset)
        for name, value in zip(node.output, results):
            if not name:
                continue
            # fp16 math is done in fp32; the result is stored as fp16, as the graph says.
            if (isinstance(value, np.ndarray) and value.dtype == np.float32 and
                    any(isinstance(v, np.ndarray) and v.dtype == np.float16 for v in ins) and
                    node.op_type != "Cast"):
                value = value.astype(np.float16)
            values[name] = value
        for name in node.input:
            if name and last_use.get(name) == k and name not in outputs and name not in feeds:
                values.pop(name, None)
    return {o.name: values[o.name] for o in graph.output}


# ---------------------------------------------------------------------------------------------
# The check

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


def input_hw(model, default=None):
    dims = dims_of(data_inputs(model.graph)[0])
    if len(dims) == 4 and dims[2] and dims[3]:
        return dims[2], dims[3]
    return default


def opencv_forward(net, blob, repeat=1):
    """Runs the net `repeat` times; returns the output and the median time in seconds."""
    net.setInput(blob)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = net.forward()
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


def numpy_reference(model, output, blob, log, cache=None):
    """`output` of `model` run by the numpy evaluator on `blob`; None when it cannot run. With a
    cache directory, the result is kept there keyed by the graph and the input (the ISNet source
    at 1024 takes about a minute on 2 cores: worth doing once, not once per prepared size)."""
    key = None
    if cache:
        h = hashlib.sha256(model.SerializeToString())
        h.update(output.encode())
        h.update(blob.tobytes())
        key = os.path.join(cache, f"reference-{h.hexdigest()[:32]}.npy")
        if os.path.exists(key):
            try:
                return np.load(key), "cached"
            except (OSError, ValueError):
                pass  # a damaged cache entry: compute it again
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.extend(o for o in model.graph.output if o.name == output)
    remove_unused(m.graph)
    inp = data_inputs(m.graph)[0]
    dtype = ONNX_TO_NUMPY.get(inp.type.tensor_type.elem_type, np.float32)
    t0 = time.perf_counter()
    try:
        result = reference_run(m, {inp.name: blob.astype(dtype)})[output].astype(np.float32)
    except Unsupported as e:
        log(f"  check: no numpy reference (it does not support {e})")
        return None, ""
    took = f"{time.perf_counter() - t0:.0f} s"
    if key:
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=".reference-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, result)
            os.chmod(tmp, 0o644)
            os.replace(tmp, key)
        except OSError:
            os.remove(tmp)  # only a cache: go on without it
    return result, took


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
        out, seconds = opencv_forward(net, blob)
    except cv2.error as e:
        raise PrepareError(f"OpenCV {cv2.__version__} loads the prepared model but its forward "
                           f"pass fails: {str(e).strip()}") from None
    if not np.all(np.isfinite(out)):
        raise PrepareError("OpenCV's forward pass of the prepared model gives NaN or infinity")
    log(f"  check: OpenCV {cv2.__version__} loads it; forward on 1x3x{hw[0]}x{hw[1]}: output "
        f"{'x'.join(map(str, out.shape))} in {seconds:.2f} s")
    result = {"forward_s": seconds}
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
            ref, _ = opencv_forward(src_net, src_blob)
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
    ref, took = numpy_reference(prepared, out_name, blob, log)
    if ref is not None:
        result["max_abs_diff"] = exact(ref, "numpy(prepared)", took)
    return result


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


# ---------------------------------------------------------------------------------------------

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
        onnx.checker.check_model(model)
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


HELP_DESCRIPTION = """\
Rewrite an ONNX model so that OpenCV DNN (cv2.dnn.readNetFromONNX) loads it, and prove it.

With no rewrite option, the ones the model needs for the target OpenCV (--for-opencv) are found
by looking at it: fp16_to_fp32 when it holds fp16 values and the target is older than 4.10,
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
        "rewrites", "applied in this order: --keep-output, --fp32, --fix-pads, --input-size\n"
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
    rw.add_argument("--steps", metavar="LIST", dest="steps_list",
                    help="comma-separated steps as in models/catalog.toml: fp16_to_fp32, "
                    "fix_conv_transpose_pads, fix_input_size:N|WxH, keep_output:NAME")
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
    singles = args.keep_output or args.fp32 or args.fix_pads or args.input_size
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
                ([f"fix_input_size:{args.input_size}"] if args.input_size else [])
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
