"""TF ops that move, reduce, resize or reshape run-time tensors, translated to ONNX (NCHW): see
tfjs.py. Axes are remapped from NHWC, sizes are static; what turns out to do nothing for these
shapes (a resize or slice to the size the tensor has, a BroadcastTo to its own shape) emits
nothing.
"""

import numpy as np

from . import PrepareError
from .tfjs_layers import const, dyn, same_pads
from .tfjs_ops import Dyn, Pending, onnx_axis, onnx_shape, to_onnx_layout

INT64 = np.int64


def ints(cv, node, value, what):
    return [int(v) for v in np.atleast_1d(const(cv, node, value, what))]


def pool(cv, node, ins):
    x = dyn(cv, node, ins[0])
    ksize = [int(k) for k in node.get("ksize")][1:3]
    strides = [int(s) for s in node.get("strides")][1:3]
    padding = node.get("padding", "VALID")
    op = "AveragePool" if node.op == "AvgPool" else "MaxPool"
    if padding == "VALID":
        if ksize == list(x.shape[1:3]):
            glob = "GlobalAveragePool" if op == "AveragePool" else "GlobalMaxPool"
            return Dyn(cv.add(glob, [x.name], node.name), (x.shape[0], 1, 1, x.shape[3]))
        begin, end = [0, 0], [0, 0]
    elif padding == "SAME":
        hp = same_pads(x.shape[1], ksize[0], strides[0], 1)
        wp = same_pads(x.shape[2], ksize[1], strides[1], 1)
        begin, end = [hp[0], wp[0]], [hp[1], wp[1]]
    else:
        raise PrepareError(f"{cv.model.path}: {node}: padding {padding!r} is not supported")
    out = [(x.shape[1 + i] + begin[i] + end[i] - ksize[i]) // strides[i] + 1 for i in range(2)]
    attrs = dict(kernel_shape=ksize, strides=strides, pads=begin + end)
    if op == "AveragePool":
        attrs["count_include_pad"] = 0  # TF averages over the window's pixels inside the input
    return Dyn(cv.add(op, [x.name], node.name, **attrs), (x.shape[0], *out, x.shape[3]))


def reduction(op):
    def run(cv, node, ins):
        x = dyn(cv, node, ins[0])
        axes = sorted({a % x.rank for a in ints(cv, node, ins[1], "axes")})
        keep = bool(node.get("keep_dims", False))
        kept = tuple(1 if a in axes else d for a, d in enumerate(x.shape))
        if x.rank == 4 and axes == [1, 2] and op == "ReduceMean":
            y = cv.add("GlobalAveragePool", [x.name], node.name + ("" if keep else "/keep"))
        else:
            y = cv.add(op, [x.name], node.name + ("" if keep else "/keep"),
                       axes=[onnx_axis(a, x.rank) for a in axes], keepdims=1)
        if keep:
            return Dyn(y, kept, x.dtype)
        shape = tuple(d for a, d in enumerate(x.shape) if a not in axes)
        return reshape_to(cv, node, Dyn(y, kept, x.dtype), shape)
    return run


def concat(cv, node, ins):
    values, axis = ins[:-1], int(const(cv, node, ins[-1], "axis"))
    rank = next(len(dyn(cv, node, v).shape) for v in values if not isinstance(v, np.ndarray))
    names, shapes = [], []
    for v in values:
        if isinstance(v, np.ndarray):
            names.append(cv.const(to_onnx_layout(v.astype(np.float32), rank),
                                  node.name + "/const"))
            shapes.append(v.shape)
        else:
            v = dyn(cv, node, v)
            names.append(v.name)
            shapes.append(v.shape)
    axis %= rank
    shape = list(shapes[0])
    shape[axis] = sum(s[axis] for s in shapes)
    return Dyn(cv.add("Concat", names, node.name, axis=onnx_axis(axis, rank)), shape)


def split(cv, node, ins):
    if node.op == "Split":
        dim, x = int(const(cv, node, ins[0], "split_dim")), dyn(cv, node, ins[1])
        n = int(node.get("num_split"))
        if x.shape[dim] % n:
            raise PrepareError(f"{cv.model.path}: {node}: {x.shape[dim]} does not split in {n}")
        sizes = [x.shape[dim] // n] * n
    else:
        x = dyn(cv, node, ins[0])
        sizes = ints(cv, node, ins[1], "size_splits")
        dim = int(const(cv, node, ins[2], "split_dim"))
        if -1 in sizes:
            sizes[sizes.index(-1)] = x.shape[dim] - (sum(sizes) + 1)
    dim %= x.rank
    split_sizes = cv.const(np.array(sizes, INT64), node.name + "/split")
    names = cv.add("Split", [x.name, split_sizes], node.name, outputs=len(sizes),
                   axis=onnx_axis(dim, x.rank))
    names = [names] if isinstance(names, str) else names
    result = []
    for name, size in zip(names, sizes):
        shape = list(x.shape)
        shape[dim] = size
        result.append(Dyn(name, shape, x.dtype))
    return result


def slice_axes(cv, node, x, begin, end, steps=None):
    """ONNX Slice over the axes whose range is not the whole axis (begin/end per TF axis)."""
    starts, ends, axes, stepl, shape = [], [], [], [], list(x.shape)
    for a in range(x.rank):
        step = 1 if steps is None else steps[a]
        b = range(x.shape[a])[slice(begin[a], end[a], step)].start
        count = len(range(x.shape[a])[slice(begin[a], end[a], step)])
        if count == x.shape[a] and step == 1:
            continue
        if count == 0:
            raise PrepareError(f"{cv.model.path}: {node} slices axis {a} to nothing")
        starts.append(b)
        ends.append(b + (count - 1) * step + (1 if step > 0 else -1))
        axes.append(onnx_axis(a, x.rank))
        stepl.append(step)
        shape[a] = count
        if ends[-1] < 0:
            ends[-1] = -2**31  # past the beginning, for a negative step
    if not axes:
        return x
    args = [cv.const(np.array(v, INT64), f"{node.name}/{w}")
            for v, w in ((starts, "starts"), (ends, "ends"), (axes, "axes"), (stepl, "steps"))]
    return Dyn(cv.add("Slice", [x.name] + args, node.name), shape, x.dtype)


def slice_op(cv, node, ins):
    x = dyn(cv, node, ins[0])
    begin, size = ints(cv, node, ins[1], "begin"), ints(cv, node, ins[2], "size")
    end = [d if s < 0 else b + s for b, s, d in zip(begin, size, x.shape)]
    return slice_axes(cv, node, x, begin, end)


def strided_slice(cv, node, ins):
    x = dyn(cv, node, ins[0])
    begin, end, steps = (ints(cv, node, v, w) for v, w in zip(ins[1:], ("begin", "end", "strides")))
    if any(node.get(m, 0) for m in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")) \
            or len(begin) != x.rank:
        raise PrepareError(f"{cv.model.path}: {node}: StridedSlice of a run-time tensor with "
                           "ellipsis, new-axis or shrink masks is not supported")
    bm, em = node.get("begin_mask", 0), node.get("end_mask", 0)
    begin = [None if bm >> a & 1 else b for a, b in enumerate(begin)]
    end = [None if em >> a & 1 else e for a, e in enumerate(end)]
    return slice_axes(cv, node, x, begin, end, steps)


def pad(cv, node, ins):
    x = dyn(cv, node, ins[0])
    paddings = np.asarray(const(cv, node, ins[1], "paddings")).astype(int).reshape(x.rank, 2)
    if not paddings.any():
        return x
    mode = {"MirrorPad": node.get("mode", "REFLECT")}.get(node.op, "CONSTANT")
    if mode not in ("CONSTANT", "REFLECT"):
        raise PrepareError(f"{cv.model.path}: {node}: padding mode {mode} has no ONNX form")
    order = [0, 3, 1, 2] if x.rank == 4 else list(range(x.rank))
    pads = [int(paddings[a, 0]) for a in order] + [int(paddings[a, 1]) for a in order]
    args = [x.name, cv.const(np.array(pads, INT64), node.name + "/pads")]
    if node.op == "PadV2":
        value = float(np.asarray(const(cv, node, ins[2], "constant_values")))
        args.append(cv.const(np.array(value, np.float32), node.name + "/value"))
    shape = [d + int(p.sum()) for d, p in zip(x.shape, paddings)]
    return Dyn(cv.add("Pad", args, node.name, mode=mode.lower()), shape, x.dtype)


def resize(cv, node, ins):
    x = dyn(cv, node, ins[0])
    h, w = ints(cv, node, ins[1], "size")
    align, half = node.get("align_corners", False), node.get("half_pixel_centers", False)
    if (h, w) == tuple(x.shape[1:3]):
        return x  # every TF resize mode maps a pixel onto itself at the same size
    attrs = {}
    if node.op == "ResizeBilinear":
        attrs["mode"] = "linear"
        attrs["coordinate_transformation_mode"] = (
            "align_corners" if align else "half_pixel" if half else "asymmetric")
    else:
        attrs["mode"] = "nearest"
        attrs["coordinate_transformation_mode"] = (
            "align_corners" if align else "tf_half_pixel_for_nn" if half else "asymmetric")
        attrs["nearest_mode"] = "round_prefer_ceil" if align else "floor"
    shape = (x.shape[0], h, w, x.shape[3])
    sizes = cv.const(np.array(onnx_shape(shape), INT64), node.name + "/sizes")
    return Dyn(cv.add("Resize", [x.name, "", "", sizes], node.name, **attrs), shape, x.dtype)


def broadcast_to(cv, node, ins):
    x, shape = ins[0], tuple(ints(cv, node, ins[1], "shape"))
    if isinstance(x, Pending):
        # A state input of unknown rank (RVM's r1i..r4i, zeros or the last frame's r1o..r4o):
        # it takes the shape it is broadcast to, so the broadcast does nothing.
        if x.fixed is None:
            x.fixed = Dyn(x.name, shape, x.dtype)
            cv.inputs.append(x.fixed)
            cv.log(f"  input '{x.name}': shape {onnx_shape(shape)} (NCHW), from {node.name}")
        x = x.fixed
    x = dyn(cv, node, x)
    if x.shape == shape:
        return x
    target = cv.const(np.array(onnx_shape(shape), INT64), node.name + "/shape")
    if x.rank != len(shape):
        raise PrepareError(f"{cv.model.path}: {node}: BroadcastTo from rank {x.rank} to "
                           f"{len(shape)} is not supported")
    return Dyn(cv.add("Expand", [x.name, target], node.name), shape, x.dtype)


def reshape_to(cv, node, x, shape):
    """Reshape in TF's element order: through NHWC when either side is a rank-4 (NCHW) tensor."""
    shape = tuple(int(d) for d in shape)
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1]))
        shape = tuple(int(np.prod(x.shape)) // known if d == -1 else d for d in shape)
    if shape == x.shape:
        return x
    name = x.name
    # With H = W = 1 or C = 1, NCHW and NHWC hold the elements in the same order: no Transpose.
    if x.rank == 4 and not (x.shape[1] == x.shape[2] == 1 or x.shape[3] == 1):
        name = cv.add("Transpose", [name], node.name + "/nhwc", perm=[0, 2, 3, 1])
    target = onnx_shape(shape) if len(shape) == 4 else list(shape)
    plain = len(shape) == 4 and not (shape[1] == shape[2] == 1 or shape[3] == 1)
    mid = list(shape) if plain else target
    out = cv.add("Reshape", [name, cv.const(np.array(mid, INT64), node.name + "/shape")],
                 node.name + ("/nhwc_out" if plain else ""))
    if plain:
        out = cv.add("Transpose", [out], node.name, perm=[0, 3, 1, 2])
    return Dyn(out, shape, x.dtype)


def reshape(cv, node, ins):
    return reshape_to(cv, node, dyn(cv, node, ins[0]), ints(cv, node, ins[1], "shape"))


def squeeze(cv, node, ins):
    x = dyn(cv, node, ins[0])
    dims = [d % x.rank for d in node.get("squeeze_dims", [])] or \
        [a for a, d in enumerate(x.shape) if d == 1]
    return reshape_to(cv, node, x, [d for a, d in enumerate(x.shape) if a not in dims])


def expand_dims(cv, node, ins):
    x = dyn(cv, node, ins[0])
    axis = int(const(cv, node, ins[1], "axis")) % (x.rank + 1)
    return reshape_to(cv, node, x, list(x.shape[:axis]) + [1] + list(x.shape[axis:]))


def transpose(cv, node, ins):
    x = dyn(cv, node, ins[0])
    perm = ints(cv, node, ins[1], "perm")
    layout = [0, 3, 1, 2] if x.rank == 4 else list(range(x.rank))  # ONNX axis i = TF axis
    inverse = [layout.index(a) for a in range(x.rank)]
    onnx_perm = [inverse[perm[layout[j]]] for j in range(x.rank)]
    shape = [x.shape[p] for p in perm]
    if onnx_perm == list(range(x.rank)):
        return Dyn(x.name, shape, x.dtype)
    return Dyn(cv.add("Transpose", [x.name], node.name, perm=onnx_perm), shape, x.dtype)


LAYERS = {
    "AvgPool": pool, "MaxPool": pool,
    "Mean": reduction("ReduceMean"), "Sum": reduction("ReduceSum"),
    "Max": reduction("ReduceMax"), "Min": reduction("ReduceMin"),
    "ConcatV2": concat, "Split": split, "SplitV": split,
    "Slice": slice_op, "StridedSlice": strided_slice,
    "Pad": pad, "PadV2": pad, "MirrorPad": pad,
    "ResizeBilinear": resize, "ResizeNearestNeighbor": resize,
    "BroadcastTo": broadcast_to, "Reshape": reshape, "Squeeze": squeeze,
    "ExpandDims": expand_dims, "Transpose": transpose,
}
