"""The rewrites that make a graph load in OpenCV DNN, each exact (the rewritten graph computes
what the original one defines), and the steps that name them (models/catalog.toml's `steps`,
prepare.py --steps). Which of them a model needs for which OpenCV: versions.plan_steps.

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
  clip_to_attributes       Clip's min/max given as inputs (opset 11 and later) become the
                           attributes min/max, the only form OpenCV 4.6 reads ("Node [Clip]
                           parse error"; 4.7 reads both, opencv/opencv#22100). PyTorch's ReLU6,
                           Hardtanh and Hardswish and TF's Relu6 and clip_by_value export as
                           such a Clip.
  fix_batch:N              makes a batch-1 graph take N frames in one forward (the input, the
                           outputs, frozen Resize sizes, [1, C, 1, 1] elementwise constants and
                           Reshape shapes), or refuses a graph that would mix the frames:
                           batch.py.

Each takes the model (changed in place) and its argument, and returns a line saying what it did.
"""

import hashlib
import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import PrepareError
from .batch import fix_batch, parse_batch
from .graph import (FLOAT, FLOAT16, attr, constant_value, data_inputs, dims_of, opset_of,
                    producers, remove_unused, set_attr, unique_name)


# Bump when a rewrite changes what it writes: fetch.py re-prepares cached models when it changes.
VERSION = "1"

INT32_MAX = 2**31 - 1  # "to the end" for Slice; OpenCV reads int64 indices as int32


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


def clip_to_attributes(model, arg=None):
    """Opset-11 Clip(x, min, max) -> Clip(x) with attributes min and max (bounds that are
    constants). That is Clip as opsets 6..10 define it, which the ONNX checker refuses in an
    opset-11+ graph: the result is written for OpenCV (4.7 and later read it too: attributes come
    first in their importer), and graph.checkable() checks it with the bounds put back."""
    graph = model.graph
    changed = 0
    for node in [n for n in graph.node if n.op_type == "Clip" and len(n.input) > 1]:
        bounds = []
        for k, default in ((1, -3.4028234663852886e38), (2, 3.4028234663852886e38)):
            name = node.input[k] if len(node.input) > k else ""
            if not name:
                bounds.append(default)
                continue
            value = constant_value(graph, name)
            if value is None or value.size != 1:
                raise PrepareError(f"Clip {node.name or node.output[0]}: its "
                                   f"{'min' if k == 1 else 'max'} '{name}' is not a constant "
                                   "scalar, which OpenCV cannot read")
            bounds.append(float(value.ravel()[0]))
        del node.input[1:]
        set_attr(node, "min", bounds[0])
        set_attr(node, "max", bounds[1])
        changed += 1
    remove_unused(graph)
    return f"clip_to_attributes: {changed} Clip nodes take min/max as attributes"


# The steps: a rewrite by name, with its argument after a colon (fix_input_size:320), as
# models/catalog.toml and prepare.py --steps write them.

STEPS = {
    "fp16_to_fp32": fp16_to_fp32,
    "fix_conv_transpose_pads": fix_conv_transpose_pads,
    "fix_input_size": fix_input_size,
    "keep_output": keep_output,
    "clip_to_attributes": clip_to_attributes,
    "fix_batch": fix_batch,
}
STEPS_WITH_ARG = {"fix_input_size", "keep_output", "fix_batch"}


def parse_step(step):
    name, _, arg = step.partition(":")
    if name not in STEPS:
        raise PrepareError(f"unknown preparation step '{step}'; known: "
                           "fp16_to_fp32, fix_conv_transpose_pads, fix_input_size:N|WxH, "
                           "keep_output:NAME, clip_to_attributes, fix_batch:N")
    if (name in STEPS_WITH_ARG) != bool(arg):
        raise PrepareError(f"step '{step}': {name} " +
                           ("needs an argument (NAME:ARG)" if name in STEPS_WITH_ARG
                            else "takes no argument"))
    if name == "fix_batch":
        parse_batch(arg)  # a bad N is said when the catalog is read, not after a download
    return name, arg or None


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
