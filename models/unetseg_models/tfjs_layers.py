"""TF ops on run-time tensors, translated to ONNX (NCHW) for one input size: see tfjs.py.

Each translation takes the Converter (tfjs_ops.py), the TF node and its input values, appends
ONNX nodes and returns the output value(s). Shapes are static, so TensorFlow's 'SAME' padding
becomes explicit pads, a resize to the size it already has disappears, and so on. TF's dilated
convolution pattern (SpaceToBatchND -> VALID convolution -> BatchToSpaceND, how TF runs a
dilated depthwise convolution) becomes one convolution with ONNX dilations: SpaceToBatchND's
padding joins the convolution's pads and BatchToSpaceND's crop takes them off again.
"""

import numpy as np

from . import PrepareError
from .tfjs_ops import Dyn, Pending, to_onnx_layout

ONNX_INT64 = np.int64


class Batched:
    """SpaceToBatchND's output: only a stride-1 VALID convolution may read it."""

    def __init__(self, src, block, pads):
        self.src, self.block, self.pads = src, block, pads


class BatchedConv:
    """That convolution's output at full resolution, for BatchToSpaceND to crop."""

    def __init__(self, value, node, block):
        self.value, self.node, self.block = value, node, block


def dyn(cv, node, value, what="input"):
    if isinstance(value, Dyn):
        return value
    if isinstance(value, Pending):
        raise PrepareError(f"{cv.model.path}: {node} reads the input '{value.name}', whose shape "
                           "is unknown (the signature gives none) and was not fixed by a "
                           "BroadcastTo before")
    raise PrepareError(f"{cv.model.path}: {node}: its {what} is {type(value).__name__}, where a "
                       "run-time tensor was expected")


def const(cv, node, value, what):
    if not isinstance(value, np.ndarray):
        raise PrepareError(f"{cv.model.path}: {node}: its {what} must be a constant (it is "
                           f"{value}); computing it at run time is not supported")
    return value


# --- element-wise ---------------------------------------------------------------------------

BINARY = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul", "RealDiv": "Div",
          "Div": "Div", "Maximum": "Max", "Minimum": "Min", "Pow": "Pow"}


def operand(cv, node, value, rank, dtype):
    if isinstance(value, np.ndarray):
        return cv.const(to_onnx_layout(value.astype(dtype), rank), node.name + "/const")
    value = dyn(cv, node, value)
    if value.rank != rank and value.rank > 0 and rank == 4:
        raise PrepareError(f"{cv.model.path}: {node} broadcasts a rank-{value.rank} run-time "
                           "tensor against rank 4, which the NCHW layout cannot follow")
    return value.name


def binary(cv, node, ins):
    a, b = ins
    shapes = [v.shape if isinstance(v, (np.ndarray, Dyn)) else dyn(cv, node, v).shape
              for v in (a, b)]
    shape = np.broadcast_shapes(*shapes)
    dtype = next(v.dtype for v in (a, b) if isinstance(v, Dyn))
    op = BINARY[node.op]
    consts = [v for v in (a, b) if isinstance(v, np.ndarray)]
    if op in ("Max", "Min") and consts and consts[0].size == 1 and dtype.kind == "f":
        # clip_by_value: OpenCV runs Clip as one activation layer (and 4.6 reads no Max/Min
        # with a constant); Clip(Clip()) chains are merged by tfjs_simplify.
        x = a if isinstance(b, np.ndarray) else b
        c = cv.const(np.array(float(consts[0].ravel()[0]), np.float32), node.name + "/bound")
        bounds = ["", c] if op == "Min" else [c, ""]
        return Dyn(cv.add("Clip", [x.name] + bounds, node.name), shape, dtype)
    names = [operand(cv, node, v, len(shape), dtype) for v in (a, b)]
    return Dyn(cv.add(op, names, node.name), shape, dtype)


def add_n(cv, node, ins):
    total = ins[0]
    for k, v in enumerate(ins[1:]):
        names = [operand(cv, node, x, len(dyn(cv, node, ins[0]).shape), np.float32)
                 for x in (total, v)]
        total = Dyn(cv.add("Add", names, node.name if k == len(ins) - 2 else node.name + "/sum"),
                    dyn(cv, node, ins[0]).shape)
    return total


def unary(op, **attrs):
    def run(cv, node, ins):
        x = dyn(cv, node, ins[0])
        extra = {k: (node.get(v[0], v[1]) if isinstance(v, tuple) else v)
                 for k, v in attrs.items()}
        return Dyn(cv.add(op, [x.name], node.name, **extra), x.shape, x.dtype)
    return run


def clip(lo, hi):
    def run(cv, node, ins):
        x = dyn(cv, node, ins[0])
        bounds = [cv.const(np.array(v, np.float32), f"{node.name}/{w}")
                  for v, w in ((lo, "min"), (hi, "max"))]
        return Dyn(cv.add("Clip", [x.name] + bounds, node.name), x.shape, x.dtype)
    return run


def rsqrt(cv, node, ins):
    x = dyn(cv, node, ins[0])
    root = cv.add("Sqrt", [x.name], node.name + "/sqrt")
    return Dyn(cv.add("Reciprocal", [root], node.name), x.shape)


def square(cv, node, ins):
    x = dyn(cv, node, ins[0])
    return Dyn(cv.add("Mul", [x.name, x.name], node.name), x.shape, x.dtype)


def cast(cv, node, ins):
    from .tfjs import TF_DTYPES
    from .tfjs_ops import ONNX_TYPES
    x = dyn(cv, node, ins[0])
    to = np.dtype(TF_DTYPES[node.get("DstT")])
    if to == x.dtype:
        return x
    return Dyn(cv.add("Cast", [x.name], node.name, to=ONNX_TYPES[to]), x.shape, to)


# --- convolutions ---------------------------------------------------------------------------

def same_pads(size, k, stride, dilation):
    """TF 'SAME': output ceil(size / stride), the padding split with the smaller half first."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv_pads(cv, node, shape, kernel, strides, dilations):
    padding = node.get("padding", "VALID")
    if padding == "VALID":
        return [0, 0], [0, 0]
    if padding == "SAME":
        hp = same_pads(shape[1], kernel[0], strides[0], dilations[0])
        wp = same_pads(shape[2], kernel[1], strides[1], dilations[1])
        return [hp[0], wp[0]], [hp[1], wp[1]]
    if padding == "EXPLICIT":
        e = [int(v) for v in node.get("explicit_paddings", [])]
        return [e[2], e[4]], [e[3], e[5]]
    raise PrepareError(f"{cv.model.path}: {node}: padding {padding!r} is not supported")


ACTIVATIONS = {"Relu": ("Relu", {}), "Sigmoid": ("Sigmoid", {}), "Elu": ("Elu", {}),
               "Tanh": ("Tanh", {})}


def check_nhwc(cv, node):
    if node.get("data_format", "NHWC") != "NHWC":
        raise PrepareError(f"{cv.model.path}: {node}: data_format {node.get('data_format')} "
                           "is not supported (TF.js graphs are NHWC)")


def conv2d(cv, node, ins):
    check_nhwc(cv, node)
    x, w = ins[0], const(cv, node, ins[1], "filter")
    depthwise = "Depthwise" in node.op
    strides = [int(s) for s in node.get("strides", [1, 1, 1, 1])][1:3]
    dilations = [int(d) for d in node.get("dilations", [1, 1, 1, 1])][1:3]
    kernel = list(w.shape[:2])
    batched = isinstance(x, Batched)
    src = x.src if batched else dyn(cv, node, x)
    if depthwise:
        cin, mult = w.shape[2:]
        weights = w.transpose(2, 3, 0, 1).reshape(cin * mult, 1, *kernel)
        group, cout, takes = cin, cin * mult, cin
    else:
        cin, cout = w.shape[2:]
        weights = w.transpose(3, 2, 0, 1)
        group = max(src.shape[3] // cin, 1)
        takes = cin * group
    if src.shape[3] != takes:
        raise PrepareError(f"{cv.model.path}: {node}: the filter takes {takes} channels, "
                           f"the input has {src.shape[3]}")
    if batched:
        if strides != [1, 1] or dilations != [1, 1] or node.get("padding") != "VALID":
            raise PrepareError(f"{cv.model.path}: {node} reads SpaceToBatchND's output but is "
                               "not a stride-1 VALID convolution: not the dilated-convolution "
                               "pattern")
        begin, end = [p[0] for p in x.pads], [p[1] for p in x.pads]
        dilations = list(x.block)
    else:
        begin, end = conv_pads(cv, node, src.shape, kernel, strides, dilations)
    out = [(src.shape[1 + i] + begin[i] + end[i] - (kernel[i] - 1) * dilations[i] - 1)
           // strides[i] + 1 for i in range(2)]
    inputs = [src.name, cv.const(weights.astype(np.float32), node.name + "/weights")]
    fused = node.get("fused_ops", [])
    if node.op.startswith("Fused") or node.op.startswith("_Fused"):
        if not fused or fused[0] != "BiasAdd":
            raise PrepareError(f"{cv.model.path}: {node}: fused ops {fused} are not supported "
                               "(BiasAdd, then an optional activation)")
        inputs.append(cv.const(const(cv, node, ins[2], "bias").astype(np.float32),
                               node.name + "/bias"))
    activation = fused[1] if len(fused) > 1 else None
    name = node.name if activation is None else node.name + "/conv"
    y = cv.add("Conv", inputs, name, kernel_shape=kernel, strides=strides,
               pads=begin + end, dilations=dilations, group=group)
    conv_node = cv.nodes[-1]
    shape = (src.shape[0], out[0], out[1], cout)
    if activation is not None:
        y = activate(cv, node, y, activation, ins)
    value = Dyn(y, shape)
    return BatchedConv(value, conv_node, x.block) if batched else value


def activate(cv, node, x, activation, ins):
    if activation in ACTIVATIONS:
        op, attrs = ACTIVATIONS[activation]
        return cv.add(op, [x], node.name, **attrs)
    if activation == "Relu6":
        bounds = [cv.const(np.array(v, np.float32), f"{node.name}/{w}")
                  for v, w in ((0.0, "min"), (6.0, "max"))]
        return cv.add("Clip", [x] + bounds, node.name)
    if activation == "LeakyRelu":
        return cv.add("LeakyRelu", [x], node.name, alpha=float(node.get("leakyrelu_alpha", 0.2)))
    if activation == "Prelu":
        alpha = to_onnx_layout(const(cv, node, ins[3], "PReLU slopes").astype(np.float32), 4)
        return cv.add("PRelu", [x, cv.const(alpha, node.name + "/alpha")], node.name)
    raise PrepareError(f"{cv.model.path}: {node}: fused activation {activation} is not supported")


def conv2d_backprop_input(cv, node, ins):
    """Conv2DBackpropInput (a transposed convolution) -> ConvTranspose: filter [kh, kw, out,
    in] -> [in, out, kh, kw]; the output size comes from input_sizes, TF's padding from the
    forward convolution it transposes."""
    check_nhwc(cv, node)
    sizes = [int(v) for v in const(cv, node, ins[0], "input_sizes")]
    w = const(cv, node, ins[1], "filter")
    x = dyn(cv, node, ins[2])
    strides = [int(s) for s in node.get("strides", [1, 1, 1, 1])][1:3]
    dilations = [int(d) for d in node.get("dilations", [1, 1, 1, 1])][1:3]
    kernel = list(w.shape[:2])
    begin, end = conv_pads(cv, node, sizes, kernel, strides, dilations)
    adj = []
    for i in range(2):
        full = (x.shape[1 + i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        adj.append(sizes[1 + i] - (full - begin[i] - end[i]))
        if not 0 <= adj[-1] < max(strides[i], dilations[i]):
            raise PrepareError(f"{cv.model.path}: {node}: output size {sizes} does not fit the "
                               f"input {list(x.shape)} and the filter")
    weights = w.transpose(3, 2, 0, 1).astype(np.float32)
    attrs = dict(kernel_shape=kernel, strides=strides, pads=begin + end, dilations=dilations)
    if any(adj):
        attrs["output_padding"] = adj
    y = cv.add("ConvTranspose", [x.name, cv.const(weights, node.name + "/weights")], node.name,
               **attrs)
    return Dyn(y, (x.shape[0], sizes[1], sizes[2], w.shape[2]))


def space_to_batch(cv, node, ins):
    x = dyn(cv, node, ins[0])
    block = [int(b) for b in const(cv, node, ins[1], "block_shape")]
    pads = [[int(p) for p in row] for row in const(cv, node, ins[2], "paddings")]
    if x.rank != 4 or len(block) != 2:
        raise PrepareError(f"{cv.model.path}: {node}: only 2-D blocks of NHWC tensors")
    return Batched(x, block, pads)


def batch_to_space(cv, node, ins):
    x = ins[0]
    if not isinstance(x, BatchedConv):
        raise PrepareError(f"{cv.model.path}: {node} does not follow SpaceToBatchND and a "
                           "convolution: not the dilated-convolution pattern, not supported")
    block = [int(b) for b in const(cv, node, ins[1], "block_shape")]
    crops = [[int(c) for c in row] for row in const(cv, node, ins[2], "crops")]
    if block != list(x.block):
        raise PrepareError(f"{cv.model.path}: {node}: block {block} differs from "
                           f"SpaceToBatchND's {x.block}")
    # A crop of k rows at one end = k fewer rows of padding there (the other outputs keep their
    # value), as far as the convolution has padding to give back; the rest is a Slice.
    pads = [a.ints for a in x.node.attribute if a.name == "pads"][0]
    rest = []
    for i in range(2):
        for side in range(2):
            k = i + 2 * side
            give = min(crops[i][side], pads[k])
            pads[k] -= give
            rest.append(crops[i][side] - give)
    v = x.value
    gave = [crops[0][0] - rest[0], crops[0][1] - rest[1], crops[1][0] - rest[2],
            crops[1][1] - rest[3]]
    v = Dyn(v.name, (v.shape[0], v.shape[1] - gave[0] - gave[1], v.shape[2] - gave[2] - gave[3],
                     v.shape[3]))
    if not any(rest):
        return v
    shape = (v.shape[0], v.shape[1] - rest[0] - rest[1], v.shape[2] - rest[2] - rest[3],
             v.shape[3])
    return slice_nchw(cv, node, v, [rest[0], rest[2]], [rest[1], rest[3]], shape)


def slice_nchw(cv, node, v, begin_hw, end_hw, shape):
    """Crops begin_hw rows/columns at the start and end_hw at the end of an NCHW tensor."""
    starts = [begin_hw[0], begin_hw[1]]
    ends = [v.shape[1] - end_hw[0], v.shape[2] - end_hw[1]]
    args = [cv.const(np.array(a, ONNX_INT64), f"{node.name}/{w}")
            for a, w in ((starts, "starts"), (ends, "ends"), ([2, 3], "axes"))]
    return Dyn(cv.add("Slice", [v.name] + args, node.name), shape)


LAYERS = dict(
    {op: binary for op in BINARY},
    AddN=add_n, Relu=unary("Relu"), Relu6=clip(0.0, 6.0), Sigmoid=unary("Sigmoid"),
    Tanh=unary("Tanh"), Elu=unary("Elu"), Exp=unary("Exp"), Sqrt=unary("Sqrt"),
    Neg=unary("Neg"), Abs=unary("Abs"), Softplus=unary("Softplus"),
    LeakyRelu=unary("LeakyRelu", alpha=("alpha", 0.2)), Rsqrt=rsqrt, Square=square, Cast=cast,
    Conv2D=conv2d, DepthwiseConv2dNative=conv2d, _FusedConv2D=conv2d,
    FusedDepthwiseConv2dNative=conv2d, Conv2DBackpropInput=conv2d_backprop_input,
    SpaceToBatchND=space_to_batch, BatchToSpaceND=batch_to_space)
