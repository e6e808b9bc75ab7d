"""fix_batch:N, the rewrite that makes a batch-1 graph run N frames in one OpenCV forward.

Exporters write batch 1 into the graph: the input's dim 0, Resize target sizes [1, C, H, W],
Reshape shapes [1, ...], and per-channel constants [1, C, 1, 1]. OpenCV 4.6 then fails on an
N x C x H x W blob (a [1, C, 1, 1] Add/Mul constant is imported as a Scale layer that refuses
a batch > 1 on a 4-D blob). The rewrite follows the batch from the image input through the
graph, node by node, and for each node either proves that it keeps the N frames apart (and
changes what it must) or refuses, naming the node and the reason: a model is never rewritten
into one that mixes the frames of a batch.

  graph input/outputs   dim 0 = N (static: the file is valid ONNX at batch N, and OpenCV runs any
                        batch 1..N on it); value_info dropped (it recorded batch 1)
  Resize sizes          a constant [1, C, H, W] gets sizes[0] = N (a copy: shared constants keep
                        their value elsewhere)
  elementwise constant  a constant of the batched operand's rank with dim 0 == 1 loses that 1
                        (numpy broadcasting gives the same result, and OpenCV a layer that takes
                        any batch)
  Reshape               a constant shape [1, ...] gets 0 (ONNX: copy dim 0 from the data) when
                        the data's dim 0 is the batch and the rest of it is reshaped on its own

Only graphs with one input are rewritten: a recurrent model's state inputs (rvm) are fed by the
element at the graph's own shape, which batching would change.
"""

import numpy as np
import onnx
from onnx import numpy_helper

from . import PrepareError
from .graph import (attr, checkable, constant_value, data_inputs, dims_of, opset_of,
                    remove_unused, unique_name)

MAX_BATCH = 64  # a sanity bound on N: beyond it a typo is likelier than a wish

# Ops that compute each item of the batch from that item alone when only input 0 is batched
# (the other inputs are weights or parameters).
PER_ITEM = {
    "Relu", "Sigmoid", "Tanh", "Clip", "LeakyRelu", "Elu", "Selu", "HardSigmoid", "HardSwish",
    "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Floor", "Ceil", "Round", "Erf",
    "Identity", "Dropout", "Cast", "Softplus", "Softsign", "Sign", "Sin", "Cos", "Not",
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "LpPool", "BatchNormalization", "InstanceNormalization", "LRN", "DepthToSpace",
    "SpaceToDepth",
}
# Broadcasting ops: every operand may be batched; the others must not reach dim 0.
BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu", "Equal",
             "Greater", "Less", "And", "Or", "Where"}
REDUCE = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL2",
          "ReduceL1", "ArgMax", "ArgMin"}


def parse_batch(text):
    try:
        n = int(str(text))
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_BATCH:
        raise PrepareError(f"bad batch '{text}': give a whole number 1..{MAX_BATCH}")
    return n


class Batcher:
    def __init__(self, model, n):
        self.model, self.graph, self.n = model, model.graph, n
        self.opset = opset_of(model)
        # Ranks and (batch-1) shapes of the original graph, for the rules below.
        inferred = onnx.shape_inference.infer_shapes(checkable(model))
        self.shapes = {vi.name: dims_of(vi) for vi in list(inferred.graph.value_info) +
                       list(inferred.graph.input) + list(inferred.graph.output)}
        self.shapes.update({t.name: list(t.dims) for t in self.graph.initializer})
        self.batched = set()
        self.copies = {}  # (constant name, what) -> its rewritten copy
        self.counts = {"resize": 0, "constant": 0, "reshape": 0}

    def where(self, node):
        return f"{node.op_type} '{node.name or node.output[0]}'"

    def refuse(self, node, why):
        raise PrepareError(f"{self.where(node)} {why}, so the batch cannot be made N safely "
                           "(this graph is not rewritten)")

    def rank(self, name, node):
        dims = self.shapes.get(name)
        if dims is None:
            self.refuse(node, f"reads '{name}' of unknown rank (ONNX shape inference cannot "
                        "tell)")
        return len(dims)

    def const(self, node, name, what):
        value = constant_value(self.graph, name)
        if value is None:
            self.refuse(node, f"takes its {what} '{name}' computed in the graph, not as a "
                        "constant")
        return value

    def replace_input(self, node, k, key, value):
        """Points input k of node at a rewritten copy of its constant (made once per key)."""
        if key not in self.copies:
            self.copies[key] = unique_name(self.graph, f"{node.input[k]}_batch{self.n}")
            self.graph.initializer.append(numpy_helper.from_array(value, self.copies[key]))
        node.input[k] = self.copies[key]

    # --- the rules: each returns nothing when the node keeps the frames apart ----------------

    def per_item(self, node):
        for name in node.input[1:]:
            if name in self.batched:
                self.refuse(node, f"reads the batched '{name}' as a weight or parameter")

    def broadcast(self, node):
        ranks = [self.rank(i, node) if i else 0 for i in node.input]
        full = max(ranks)
        for k, name in enumerate(node.input):
            if not name:
                continue
            if name in self.batched:
                if ranks[k] != full:
                    self.refuse(node, f"broadcasts the batched '{name}' (rank {ranks[k]}) "
                                f"against a rank-{full} operand: the batch would not be dim 0")
                continue
            if ranks[k] < full:
                continue  # right-aligned broadcasting never reaches dim 0
            value = constant_value(self.graph, name)
            if value is None:
                self.refuse(node, f"reads '{name}', of the full rank but computed in the "
                            "graph, beside the batched operand")
            if value.shape[0] != 1:
                self.refuse(node, f"reads the constant '{name}' {list(value.shape)}, whose dim 0 "
                            "would meet the batch")
            self.replace_input(node, k, (name, "squeeze"), value.reshape(value.shape[1:]))
            self.counts["constant"] += 1

    def resize(self, node):
        self.per_item_inputs(node, 0)
        inputs = list(node.input) + [""] * 4
        scales_name = inputs[2] if node.op_type == "Resize" else inputs[1]
        if node.op_type == "Resize" and self.opset == 10:
            scales_name = inputs[1]
        if node.op_type == "Upsample" and attr(node, "scales") is not None:
            scales = np.array(attr(node, "scales"))
            if float(scales[0]) != 1.0:
                self.refuse(node, f"scales the batch dimension ({scales.tolist()})")
        elif scales_name:
            scales = self.const(node, scales_name, "scales")
            if scales.size and float(scales.ravel()[0]) != 1.0:
                self.refuse(node, f"scales the batch dimension ({scales.tolist()})")
        if node.op_type == "Resize" and inputs[3]:
            sizes = constant_value(self.graph, inputs[3])
            if sizes is None:
                if not self.sizes_from_shape(inputs[3]):
                    self.refuse(node, f"takes its sizes '{inputs[3]}' computed in the graph in "
                                "a form this tool does not follow")
                return
            if int(sizes[0]) != 1:
                self.refuse(node, f"targets batch {int(sizes[0])} in its sizes")
            fixed = sizes.astype(np.int64).copy()
            fixed[0] = self.n
            self.replace_input(node, 3, (inputs[3], "sizes"), fixed)
            self.counts["resize"] += 1

    def sizes_from_shape(self, name):
        """PyTorch's interpolate(x, size=y.shape[2:]) traced at one size (U2-Net, ISNet):
        Concat(Slice(Shape(x), 0, 2), constant [H, W]): dims 0 and 1 read at run time."""
        prod = {o: n for n in self.graph.node for o in n.output}
        concat = prod.get(name)
        if concat is None or concat.op_type != "Concat" or len(concat.input) != 2:
            return False
        head = prod.get(concat.input[0])
        if head is None or head.op_type != "Slice" or prod.get(head.input[0]) is None:
            return False
        if prod[head.input[0]].op_type != "Shape":
            return False
        starts = constant_value(self.graph, head.input[1]) if len(head.input) > 1 else \
            np.array(attr(head, "starts", [1]))
        return starts is not None and int(np.ravel(starts)[0]) == 0

    def per_item_inputs(self, node, *allowed):
        for k, name in enumerate(node.input):
            if name in self.batched and k not in allowed:
                self.refuse(node, f"reads the batched '{name}' as a parameter")

    def reshape(self, node):
        self.per_item_inputs(node, 0)
        shape = self.const(node, node.input[1], "shape").astype(np.int64)
        data = self.shapes.get(node.input[0])
        if shape.size == 0:
            self.refuse(node, "makes a scalar of the batch")
        if attr(node, "allowzero", 0):
            self.refuse(node, "has allowzero=1 (0 cannot copy the batch)")
        if not data or any(d is None for d in data[1:]):
            self.refuse(node, f"reshapes '{node.input[0]}' of unknown shape")
        rest = int(np.prod(data[1:]))
        # The target past dim 0, 0 resolved (it copies a per-item dim of the data).
        others = [data[i] if v == 0 and i < len(data) else int(v)
                  for i, v in enumerate(shape[1:].tolist(), start=1)]
        known = int(np.prod([v for v in others if v != -1]))
        # The rest of each item must become the rest of the target on its own: then dim 0
        # is the batch on both sides.
        per_item = rest % known == 0 if -1 in others else known == rest
        first = int(shape[0])
        if first == 0 and per_item or first == -1 and -1 not in others and per_item:
            return  # already copies (or infers) the batch
        if first != 1 or not per_item:
            self.refuse(node, f"reshapes {data} to {shape.tolist()}: the batch would not stay "
                        "dim 0 on its own")
        fixed = shape.copy()
        fixed[0] = 0
        self.replace_input(node, 1, (node.input[1], "reshape"), fixed)
        self.counts["reshape"] += 1

    def slice(self, node):
        """Slice may touch dim 0 only to keep all of it (start 0, to the end, step 1)."""
        self.per_item_inputs(node, 0)
        if self.opset >= 10:
            names = list(node.input[1:]) + [""] * 4
            starts, ends = (self.const(node, names[i], w) for i, w in ((0, "starts"),
                                                                         (1, "ends")))
            axes = self.const(node, names[2], "axes") if names[2] else None
            steps = self.const(node, names[3], "steps") if names[3] else None
        else:
            starts, ends = np.array(attr(node, "starts")), np.array(attr(node, "ends"))
            axes, steps = attr(node, "axes"), None
        starts, ends = np.ravel(starts), np.ravel(ends)
        axes = np.arange(len(starts)) if axes is None else np.ravel(axes)
        steps = np.ones(len(starts), np.int64) if steps is None else np.ravel(steps)
        rank = self.rank(node.input[0], node)
        for a, b, e, st in zip(axes, starts, ends, steps):
            if int(a) % rank == 0 and (int(b) != 0 or int(e) < 2**31 - 1 or int(st) != 1):
                self.refuse(node, f"slices dim 0, the batch (start {int(b)}, end {int(e)})")

    def expand(self, node):
        """Expand broadcasts: a shape [1, ...] of the data's rank keeps the batch as it is."""
        self.per_item_inputs(node, 0)
        shape = np.ravel(self.const(node, node.input[1], "shape"))
        rank = self.rank(node.input[0], node)
        if len(shape) > rank or len(shape) == rank and int(shape[0]) != 1:
            self.refuse(node, f"expands to {shape.tolist()}: the batch would not stay dim 0")

    def axes_rule(self, node, name, default=None):
        """The node's axes (attribute or constant input) must not include dim 0."""
        axes = attr(node, name)
        if axes is None and len(node.input) > 1 and node.input[1] and node.op_type in (
                "Squeeze", "Unsqueeze", "ReduceSum") and self.opset >= 13:
            axes = self.const(node, node.input[1], name).tolist()
        if axes is None:
            axes = default
        if axes is None:
            self.refuse(node, f"works on every dim (no {name}), the batch among them")
        rank = self.rank(node.input[0], node)
        if node.op_type == "Unsqueeze":
            rank += len(np.ravel(axes))
        for a in np.ravel(axes):
            if int(a) % max(rank, 1) == 0:
                self.refuse(node, f"works on dim 0 ({name}={list(np.ravel(axes))}), the batch")

    def visit(self, node):
        op = node.op_type
        if op in PER_ITEM:
            return self.per_item(node)
        if op in BROADCAST:
            return self.broadcast(node)
        if op in ("Resize", "Upsample"):
            return self.resize(node)
        if op == "Reshape":
            return self.reshape(node)
        if op == "Slice":
            return self.slice(node)
        if op == "Expand":
            return self.expand(node)
        if op in ("Concat", "Split", "Softmax", "LogSoftmax", "Gather", "Flatten"):
            if op == "Concat":
                unbatched = [i for i in node.input if i not in self.batched]
                if unbatched:
                    self.refuse(node, f"joins the batched values with '{unbatched[0]}', which "
                                "has batch 1")
            else:
                self.per_item_inputs(node, 0)
            default = {"Flatten": 1, "Softmax": 1 if self.opset < 13 else -1,
                       "LogSoftmax": 1 if self.opset < 13 else -1}.get(op, 0)
            return self.axes_rule(node, "axis", default)
        if op == "Transpose":
            perm = attr(node, "perm")
            if not perm or perm[0] != 0:
                self.refuse(node, f"moves the batch (perm={perm})")
            return None
        if op in REDUCE:
            self.per_item_inputs(node, 0)
            return self.axes_rule(node, "axis" if op.startswith("Arg") else "axes",
                                  0 if op.startswith("Arg") else None)
        if op in ("Squeeze", "Unsqueeze"):
            self.per_item_inputs(node, 0)
            return self.axes_rule(node, "axes")
        if op in ("Gemm", "MatMul"):
            self.per_item_inputs(node, 0)
            if op == "Gemm" and attr(node, "transA", 0):
                self.refuse(node, "reads its batched input transposed (transA=1)")
            if op == "MatMul" and self.rank(node.input[1], node) > 2:
                self.refuse(node, "multiplies by a stack of matrices")
            return None
        if op == "Shape":
            return None  # read at run time: the batch it reports is the real one
        self.refuse(node, "is an operator this tool does not know how to batch")

    def run(self):
        graph = self.graph
        if any(a.type == onnx.AttributeProto.GRAPH for n in graph.node for a in n.attribute):
            raise PrepareError("the graph has subgraphs (If/Loop/Scan), which fix_batch does "
                               "not follow")
        inputs = data_inputs(graph)
        if len(inputs) != 1:
            raise PrepareError(f"fix_batch needs a model with one input; this one has "
                               f"{len(inputs)} ({', '.join(i.name for i in inputs)}): a "
                               "recurrent model's states are fed at the graph's own shape")
        dims = dims_of(inputs[0])
        if len(dims) != 4 or dims[0] not in (1, None):
            raise PrepareError(f"fix_batch needs a 1 x C x H x W input; '{inputs[0].name}' is "
                               f"{dims}")
        self.batched.add(inputs[0].name)
        for node in list(graph.node):
            if any(i in self.batched for i in node.input):
                self.visit(node)
                if node.op_type != "Shape":
                    self.batched.update(node.output)
        for out in graph.output:
            if out.name not in self.batched:
                raise PrepareError(f"the output '{out.name}' does not depend on the input, so "
                                   "it has no batch")
            d = out.type.tensor_type.shape.dim
            if not d:
                raise PrepareError(f"the output '{out.name}' has no recorded shape")
            d[0].Clear()
            d[0].dim_value = self.n
        d = inputs[0].type.tensor_type.shape.dim[0]
        d.Clear()
        d.dim_value = self.n
        del graph.value_info[:]
        remove_unused(graph)
        # ONNX shape inference at batch N must agree with the outputs declared at N: a batch 1
        # left frozen anywhere on the way shows up here rather than in OpenCV.
        try:
            onnx.shape_inference.infer_shapes(checkable(self.model), strict_mode=True)
        except Exception as e:
            raise PrepareError(f"at batch {self.n} the graph's shapes do not agree "
                               f"({str(e).strip()[:300]})") from None
        c = self.counts
        return (f"fix_batch: input and outputs at batch {self.n}; {c['resize']} Resize sizes, "
                f"{c['constant']} [1, ...] elementwise constants, {c['reshape']} Reshape shapes "
                "rewritten")


def fix_batch(model, arg):
    return Batcher(model, parse_batch(arg)).run()
