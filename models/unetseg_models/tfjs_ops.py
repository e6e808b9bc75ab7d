"""The TF.js graph evaluated for one input size (see tfjs.py): values, the ONNX being built,
control flow, and what is computed here with numpy (shapes and constants).

A value is a numpy array (a constant: weights, shapes, everything computed from them), a Dyn
(a tensor known only at run time: its ONNX name, its static shape in TF's layout, NHWC for rank
4, its dtype), Pending (a graph input whose shape the signature does not give: RVM's recurrent
states, shaped by the BroadcastTo that reads them), or DEAD (an output of a Switch whose branch
is not taken; TF's rule: a node with a dead input, data or control, is dead, except Merge, which
forwards its live input). The run-time ops are translated by tfjs_layers.py.
"""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from . import PrepareError
from .tfjs import TF_DTYPES

OPSET = 13  # Clip with inputs, Split with a 'split' input, Resize with 'sizes': read by 4.6+
NCHW_AXIS = [0, 2, 3, 1]  # TF (NHWC) axis -> ONNX (NCHW) axis for rank-4 tensors
ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int32): TensorProto.INT32,
              np.dtype(np.int64): TensorProto.INT64, np.dtype(np.bool_): TensorProto.BOOL}


class Dyn:
    """A run-time tensor: ONNX name, static shape in TF's layout (NHWC for rank 4), dtype."""

    def __init__(self, name, shape, dtype=np.float32):
        self.name, self.shape, self.dtype = name, tuple(int(d) for d in shape), np.dtype(dtype)

    @property
    def rank(self):
        return len(self.shape)

    def __repr__(self):
        return f"run-time tensor '{self.name}' {list(self.shape)}"


class Pending:
    """A graph input of unknown shape: the BroadcastTo that reads it gives it its shape."""

    def __init__(self, name, dtype):
        self.name, self.dtype = name, np.dtype(dtype)
        self.fixed = None


class Dead:
    def __repr__(self):
        return "dead (a branch not taken)"


DEAD = Dead()


def onnx_shape(shape):
    shape = list(shape)
    return [shape[i] for i in (0, 3, 1, 2)] if len(shape) == 4 else shape


def to_onnx_layout(value, rank):
    """A constant to combine with a run-time tensor of `rank`: broadcast as TF would (trailing
    axes aligned), in the ONNX tensor's layout."""
    value = np.asarray(value)
    if rank == 4 and 0 < value.ndim <= 4:
        value = value.reshape((1,) * (4 - value.ndim) + value.shape).transpose(0, 3, 1, 2)
    return value


def onnx_axis(axis, rank):
    axis = int(axis)
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    axis %= rank
    return NCHW_AXIS[axis] if rank == 4 else axis


class Converter:
    """Evaluates a TfjsModel for one input size and builds the ONNX graph of its run-time part."""

    def __init__(self, model, size, constants, log):
        self.model, self.size, self.constants, self.log = model, size, constants, log
        self.values = {}
        self.nodes, self.initializers, self.inputs = [], [], []
        self.taken = set(model.nodes) | set(model.inputs)
        self.image_input = None

    # --- building ONNX ------------------------------------------------------------------------

    def fresh(self, hint):
        name, k = hint, 1
        while name in self.taken:
            name, k = f"{hint}_{k}", k + 1
        self.taken.add(name)
        return name

    def add(self, op, inputs, hint, outputs=1, **attrs):
        """Appends an ONNX node; returns its output names (one name when outputs == 1)."""
        names = [self.fresh(hint if k == 0 else f"{hint}:{k}") for k in range(outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), names, name=names[0], **attrs))
        return names[0] if outputs == 1 else names

    def const(self, value, hint, dtype=None):
        """An initializer holding `value` (already in ONNX layout); returns its name."""
        value = np.asarray(value, dtype=dtype)
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    # --- evaluation ---------------------------------------------------------------------------

    def needed(self, names):
        """The nodes the given ones depend on (data and control inputs), producers first."""
        order, state = [], {}
        for root in names:
            stack = [(root, False)]
            while stack:
                name, done = stack.pop()
                if done:
                    state[name] = 2
                    order.append(self.model.nodes[name])
                    continue
                if state.get(name):
                    if state[name] == 1:
                        raise PrepareError(f"{self.model.path}: the graph has a cycle through "
                                           f"'{name}' (a TF while loop?), which is not supported")
                    continue
                node = self.model.nodes.get(name)
                if node is None:
                    raise PrepareError(f"{self.model.path}: a node reads '{name}', which the "
                                       "graph does not have")
                state[name] = 1
                stack.append((name, True))
                for dep in [src for src, _ in node.inputs] + node.control:
                    if not state.get(dep):
                        stack.append((dep, False))
                    elif state[dep] == 1:
                        raise PrepareError(f"{self.model.path}: the graph has a cycle through "
                                           f"'{dep}', which is not supported")
        return order

    def value_of(self, src, k):
        outs = self.values[src]
        if outs is DEAD:
            return DEAD
        if k >= len(outs):
            raise PrepareError(f"{self.model.path}: a node reads output {k} of "
                               f"{self.model.nodes[src]}, which has {len(outs)}")
        return outs[k]

    def run(self, outputs):
        from .tfjs_layers import LAYERS
        from .tfjs_tensors import LAYERS as TENSOR_LAYERS
        layers = dict(LAYERS, **TENSOR_LAYERS)
        for node in self.needed(list(outputs.values())):
            ins = [self.value_of(src, k) for src, k in node.inputs]
            try:
                self.values[node.name] = self.evaluate(node, ins, layers)
            except PrepareError:
                raise
            except (ValueError, TypeError, IndexError, KeyError) as e:
                raise PrepareError(f"{self.model.path}: {node}: {type(e).__name__}: {e}") \
                    from None
        return self.assemble(outputs)

    def evaluate(self, node, ins, layers):
        op = node.op
        if op == "Merge":
            live = [(k, v) for k, v in enumerate(ins) if v is not DEAD]
            if not live:
                return DEAD
            return [live[0][1], np.array(live[0][0], np.int32)]
        if any(v is DEAD for v in ins) or any(self.values[c] is DEAD or (
                isinstance(self.values[c], list) and self.values[c] and
                all(v is DEAD for v in self.values[c])) for c in node.control):
            return DEAD
        pending = [v for v in ins if isinstance(v, Pending) and v.fixed is None]
        if pending and op != "BroadcastTo":
            raise PrepareError(f"{self.model.path}: {node} reads the input '{pending[0].name}', "
                               "whose shape the signature leaves open: fix its value for the "
                               "conversion (RVM's downsample_ratio: --downsample-ratio)")
        ins = [v.fixed if isinstance(v, Pending) and v.fixed is not None else v for v in ins]
        if op == "Const":
            if node.name not in self.model.weights:
                raise PrepareError(f"{self.model.path}: constant '{node.name}' has no value in "
                                   "the weights manifest")
            return [self.model.weights[node.name]]
        if op == "Placeholder":
            return [self.placeholder(node)]
        if op == "Switch":
            data, pred = ins
            if not isinstance(pred, np.ndarray):
                raise PrepareError(f"{self.model.path}: {node} branches on {pred}, a value known "
                                   "only at run time; fix the input it depends on (e.g. "
                                   "--downsample-ratio) so that the branch is chosen now")
            return [DEAD, data] if bool(np.all(pred)) else [data, DEAD]
        if op in ("NoOp", "Assert"):
            return []
        if op in ("Identity", "StopGradient", "Snapshot", "IdentityN"):
            return list(ins)
        if all(isinstance(v, np.ndarray) for v in ins) and op in CONSTANT_OPS:
            return [np.asarray(v) for v in CONSTANT_OPS[op](node, *ins)]
        if op in ("Shape", "Size", "Rank"):
            shape = self.shape_of(ins[0], node)
            dtype = TF_DTYPES.get(node.get("out_type", "DT_INT32"), np.int32)
            value = {"Shape": shape, "Size": int(np.prod(shape)), "Rank": len(shape)}[op]
            return [np.array(value, dtype=dtype)]
        if op not in layers:
            known = sorted(set(layers) | set(CONSTANT_OPS))
            raise PrepareError(f"{self.model.path}: {node} is not supported on run-time tensors "
                               f"(supported: {', '.join(known)})")
        result = layers[op](self, node, ins)
        return result if isinstance(result, list) else [result]

    def shape_of(self, value, node):
        if isinstance(value, np.ndarray):
            return list(value.shape)
        if isinstance(value, Pending):
            if value.fixed is None:
                raise PrepareError(f"{self.model.path}: {node} reads the shape of input "
                                   f"'{value.name}', whose shape is not known yet")
            return list(value.fixed.shape)
        if isinstance(value, Dyn):
            return list(value.shape)
        raise PrepareError(f"{self.model.path}: {node} reads the shape of {value}")

    def placeholder(self, node):
        key = {v: k for k, v in self.model.inputs.items()}.get(node.name, node.name)
        dtype = TF_DTYPES.get(node.get("dtype", "DT_FLOAT"), np.float32)
        if key in self.constants:
            self.log(f"  input '{key}' fixed to {self.constants[key]}")
            return np.array(self.constants[key], dtype=dtype)
        shape_attr = node.get("shape", {}).get("shape", {})
        if shape_attr.get("unknownRank") or "dim" not in shape_attr:
            return Pending(key, dtype)
        dims = [int(d.get("size", -1)) for d in shape_attr["dim"]]
        if len(dims) == 4 and dims[3] in (1, 3, 4) and self.image_input is None:
            self.image_input = key
            if self.size is None:
                if dims[1] <= 0 or dims[2] <= 0:
                    raise PrepareError(f"{self.model.path}: the input '{key}' has no fixed size "
                                       f"({dims}): give the size to convert for (--size WxH)")
                self.size = (dims[2], dims[1])
            elif dims[1] > 0 and (dims[2], dims[1]) != tuple(self.size):
                self.log(f"  note: the model's input '{key}' is {dims[2]}x{dims[1]}; converting "
                         f"for {self.size[0]}x{self.size[1]} as asked")
            dims = [1, self.size[1], self.size[0], dims[3]]
        dims = [1 if k == 0 and d < 0 else d for k, d in enumerate(dims)]
        if any(d < 0 for d in dims):
            raise PrepareError(f"{self.model.path}: the input '{key}' has shape {dims} with "
                               "unknown sizes that the image size does not fix")
        value = Dyn(key, dims, dtype)
        self.inputs.append(value)
        return value

    # --- the ONNX model -----------------------------------------------------------------------

    def assemble(self, outputs):
        graph_outputs = []
        renames = {}
        for key, node_name in outputs.items():
            value = self.values[node_name]
            value = DEAD if value is DEAD else value[0]
            if not isinstance(value, Dyn):
                raise PrepareError(f"{self.model.path}: the output '{key}' is {value} for these "
                                   "inputs, not a run-time tensor")
            if value.name in renames.values() or value in self.inputs or value.name in renames:
                value = Dyn(self.add("Identity", [value.name], key), value.shape, value.dtype)
            renames[value.name] = key
            graph_outputs.append(Dyn(key, value.shape, value.dtype))
        for node in self.nodes:
            for seq in (node.input, node.output):
                for i, name in enumerate(seq):
                    if name in renames:
                        seq[i] = renames[name]
            if node.name in renames:
                node.name = renames[node.name]

        def info(v):
            return helper.make_tensor_value_info(v.name, ONNX_TYPES[v.dtype], onnx_shape(v.shape))
        for p in self.inputs:
            if p.name in renames:
                raise PrepareError(f"{self.model.path}: the output '{renames[p.name]}' is the "
                                   f"input '{p.name}' itself")
        # The image first, then the other inputs and the outputs by name (RVM: src, r1i..r4i;
        # pha, r1o..r4o), whatever order the signature's JSON has.
        inputs = sorted(self.inputs, key=lambda v: (v.name != self.image_input, v.name))
        graph_outputs.sort(key=lambda v: v.name)
        graph = helper.make_graph(self.nodes, "tfjs", [info(v) for v in inputs],
                                  [info(v) for v in graph_outputs],
                                  initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="unetseg convert_tfjs")
        model.ir_version = 7
        return model


# --- what is computed here: shapes and constants (numpy, TF's semantics) ----------------------

def strided_slice(node, x, begin, end, strides):
    """TF StridedSlice with its five masks, on a numpy array."""
    index, dim = [], 0
    begin_mask, end_mask = node.get("begin_mask", 0), node.get("end_mask", 0)
    ellipsis, new_axis = node.get("ellipsis_mask", 0), node.get("new_axis_mask", 0)
    shrink = node.get("shrink_axis_mask", 0)
    spec = len(begin)
    for i in range(spec):
        if ellipsis >> i & 1:
            rest = sum(1 for j in range(i + 1, spec) if not new_axis >> j & 1)
            count = x.ndim - dim - rest
            index += [slice(None)] * count
            dim += count
        elif new_axis >> i & 1:
            index.append(None)
        elif shrink >> i & 1:
            index.append(int(begin[i]))
            dim += 1
        else:
            b = None if begin_mask >> i & 1 else int(begin[i])
            e = None if end_mask >> i & 1 else int(end[i])
            index.append(slice(b, e, int(strides[i])))
            dim += 1
    return x[tuple(index)]


def reduce(fn):
    def run(node, x, axes):
        axes = tuple(int(a) for a in np.atleast_1d(axes))
        return [fn(x, axis=axes, keepdims=bool(node.get("keep_dims", False))).astype(x.dtype)]
    return run


def cast(node, x):
    return [x.astype(TF_DTYPES[node.get("DstT")])]


def split_v(node, x, sizes, dim):
    sizes = [int(s) for s in sizes]
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[int(dim)] - (sum(sizes) + 1)
    return np.split(x, np.cumsum(sizes)[:-1], axis=int(dim))


CONSTANT_OPS = {
    "Add": lambda n, a, b: [np.add(a, b)], "AddV2": lambda n, a, b: [np.add(a, b)],
    "AddN": lambda n, *a: [sum(a[1:], a[0])],
    "Sub": lambda n, a, b: [np.subtract(a, b)], "Mul": lambda n, a, b: [np.multiply(a, b)],
    "RealDiv": lambda n, a, b: [np.true_divide(a, b).astype(a.dtype)],
    "Div": lambda n, a, b: [np.floor_divide(a, b) if a.dtype.kind == "i"
                            else np.true_divide(a, b)],
    "FloorDiv": lambda n, a, b: [np.floor_divide(a, b)],
    "FloorMod": lambda n, a, b: [np.mod(a, b)],
    "Maximum": lambda n, a, b: [np.maximum(a, b)], "Minimum": lambda n, a, b: [np.minimum(a, b)],
    "Pow": lambda n, a, b: [np.power(a, b)], "Neg": lambda n, a: [np.negative(a)],
    "Floor": lambda n, a: [np.floor(a)], "Ceil": lambda n, a: [np.ceil(a)],
    "Round": lambda n, a: [np.round(a)], "Sqrt": lambda n, a: [np.sqrt(a)],
    "Equal": lambda n, a, b: [np.equal(a, b)], "NotEqual": lambda n, a, b: [np.not_equal(a, b)],
    "Less": lambda n, a, b: [np.less(a, b)], "LessEqual": lambda n, a, b: [np.less_equal(a, b)],
    "Greater": lambda n, a, b: [np.greater(a, b)],
    "GreaterEqual": lambda n, a, b: [np.greater_equal(a, b)],
    "LogicalAnd": lambda n, a, b: [np.logical_and(a, b)],
    "LogicalOr": lambda n, a, b: [np.logical_or(a, b)],
    "LogicalNot": lambda n, a: [np.logical_not(a)],
    "Select": lambda n, c, a, b: [np.where(c, a, b)],
    "SelectV2": lambda n, c, a, b: [np.where(c, a, b)],
    "Cast": cast,
    "Squeeze": lambda n, x: [np.squeeze(x, axis=tuple(n.get("squeeze_dims", [])) or None)],
    "ExpandDims": lambda n, x, axis: [np.expand_dims(x, int(axis))],
    "Reshape": lambda n, x, shape: [x.reshape([int(s) for s in np.atleast_1d(shape)])],
    "Pack": lambda n, *xs: [np.stack(xs, axis=n.get("axis", 0))],
    "Unpack": lambda n, x: list(np.moveaxis(x, n.get("axis", 0), 0)),
    "ConcatV2": lambda n, *xs: [np.concatenate(xs[:-1], axis=int(xs[-1]))],
    "StridedSlice": lambda n, x, b, e, s: [strided_slice(n, x, b, e, s)],
    "Slice": lambda n, x, b, s: [x[tuple(slice(int(i), None if int(k) < 0 else int(i) + int(k))
                                          for i, k in zip(b, s))]],
    "Fill": lambda n, dims, v: [np.full([int(d) for d in dims], v, dtype=v.dtype)],
    "Range": lambda n, a, b, d: [np.arange(a, b, d, dtype=np.result_type(a, b, d))],
    "Transpose": lambda n, x, perm: [np.transpose(x, [int(p) for p in perm])],
    "Tile": lambda n, x, reps: [np.tile(x, [int(r) for r in reps])],
    "GatherV2": lambda n, x, idx, axis: [np.take(x, idx, axis=int(axis))],
    "Prod": reduce(np.prod), "Sum": reduce(np.sum), "Max": reduce(np.max),
    "Min": reduce(np.min), "Mean": reduce(np.mean),
    "Split": lambda n, dim, x: np.split(x, n.get("num_split"), axis=int(dim)),
    "SplitV": split_v,
    "BroadcastTo": lambda n, x, shape: [np.broadcast_to(x, [int(s) for s in shape]).copy()],
    "Relu": lambda n, x: [np.maximum(x, 0)],
}
