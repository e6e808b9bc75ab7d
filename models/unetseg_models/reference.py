"""The reference: a small numpy evaluator of ONNX graphs, plain and slow, written from the ONNX
operator definitions. It runs the SOURCE graph as ONNX defines it (fp16 tensors stay fp16 and
are computed in fp32, asymmetric pads, frozen sizes) to compare OpenCV's result against.

Why not onnx.reference.ReferenceEvaluator: it came with ONNX 1.13, and Debian 12's python3-onnx
is 1.12, which has none (the project runs on Debian's packages; PyPI is not one of them).
"""

import hashlib
import math
import os
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .graph import attr, data_inputs, dims_of, opset_of, remove_unused


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


def _avg_pool(x, kernel, strides, pads, count_include_pad):
    """ONNX AveragePool: with count_include_pad 0 each window averages only its pixels inside
    the input (TensorFlow's 'SAME')."""
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    inside = np.pad(np.ones(x.shape[2:], np.float32), ((pads[0], pads[2]), (pads[1], pads[3])))
    oh = (xp.shape[2] - kernel[0]) // strides[0] + 1
    ow = (xp.shape[3] - kernel[1]) // strides[1] + 1
    total = np.zeros(x.shape[:2] + (oh, ow), np.float32)
    count = np.zeros((oh, ow), np.float32)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            sl = (slice(i, i + strides[0] * (oh - 1) + 1, strides[0]),
                  slice(j, j + strides[1] * (ow - 1) + 1, strides[1]))
            total += xp[(slice(None), slice(None)) + sl]
            count += inside[sl]
    return total / (count if not count_include_pad else kernel[0] * kernel[1])


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
    if op == "AveragePool":
        if attr(node, "ceil_mode", 0) or attr(node, "auto_pad", b"NOTSET") != b"NOTSET":
            raise Unsupported("AveragePool with ceil_mode or auto_pad")
        return [_avg_pool(f32[0], attr(node, "kernel_shape"), attr(node, "strides", [1, 1]),
                          attr(node, "pads", [0, 0, 0, 0]), attr(node, "count_include_pad", 0))]
    if op in ("GlobalAveragePool", "ReduceMean"):
        axes = (2, 3) if op == "GlobalAveragePool" else tuple(attr(node, "axes"))
        keep = op == "GlobalAveragePool" or attr(node, "keepdims", 1)
        return [f32[0].mean(axis=axes, keepdims=bool(keep), dtype=np.float64).astype(np.float32)]
    if op == "Clip":
        # Opset 11+: bounds as inputs; before (and OpenCV 4.6's form, see
        # rewrites.clip_to_attributes): attributes.
        lo = f32[1] if len(f32) > 1 and f32[1] is not None else attr(node, "min", -np.inf)
        hi = f32[2] if len(f32) > 2 and f32[2] is not None else attr(node, "max", np.inf)
        return [np.minimum(np.maximum(f32[0], lo), hi).astype(f32[0].dtype)]
    if op == "Split":
        axis = attr(node, "axis", 0)
        sizes = f32[1] if len(f32) > 1 and f32[1] is not None else attr(node, "split")
        if sizes is None:
            return np.split(f32[0], len(node.output), axis=axis)
        return np.split(f32[0], np.cumsum(sizes)[:-1], axis=axis)
    if op == "Pad":
        pads = ins[1] if opset >= 11 else attr(node, "pads")
        value = f32[2] if len(f32) > 2 and f32[2] is not None else attr(node, "value", 0.0)
        mode = attr(node, "mode", b"constant").decode()
        k = len(pads) // 2
        width = [(int(pads[i]), int(pads[i + k])) for i in range(k)]
        if mode == "constant":
            return [np.pad(f32[0], width, constant_values=float(value))]
        return [np.pad(f32[0], width, mode={"reflect": "reflect", "edge": "edge"}[mode])]
    simple = {
        "Relu": lambda a: np.maximum(a, 0), "Sigmoid": lambda a: 0.5 * (1 + np.tanh(0.5 * a)),
        "Tanh": np.tanh, "Exp": np.exp, "Sqrt": np.sqrt, "Neg": np.negative,
        "Reciprocal": np.reciprocal, "Identity": lambda a: a,
        "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
        "Max": np.maximum, "Min": np.minimum,
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
    inp, *others = data_inputs(m.graph)
    dtype = ONNX_TO_NUMPY.get(inp.type.tensor_type.elem_type, np.float32)
    feeds = {inp.name: blob.astype(dtype)}
    # Further inputs (a recurrent model's state) get zeros, as on a first frame.
    feeds.update({i.name: np.zeros(dims_of(i), np.float32) for i in others})
    t0 = time.perf_counter()
    try:
        result = reference_run(m, feeds)[output].astype(np.float32)
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
