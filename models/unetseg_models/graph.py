"""Reading ONNX graphs and the small helpers every rewrite and check uses: loading with clear
messages (always in topological order), attributes, initializers and constants, graph inputs and
shapes, fresh names, and dropping what no output needs."""

import heapq
import os
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import PrepareError

FLOAT16 = TensorProto.FLOAT16
FLOAT = TensorProto.FLOAT


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
        onnx.checker.check_model(checkable(model))
    except Exception as e:
        raise PrepareError(f"{path} is not a valid ONNX model ({str(e).strip()}). A corrupt or "
                           "truncated file? Fetch it again and check its sha256.") from None
    return model


def checkable(model):
    """The model as the ONNX checker should see it: OpenCV 4.6's Clip (min/max attributes, see
    rewrites.clip_to_attributes) is valid only before opset 11, so in a later opset a copy with
    the bounds put back as inputs is checked instead (the same computation)."""
    opset = opset_of(model)
    clips = [n for n in model.graph.node if n.op_type == "Clip" and
             any(a.name in ("min", "max") for a in n.attribute)]
    if opset < 11 or not clips:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for k, node in enumerate(n for n in copy.graph.node if n.op_type == "Clip" and
                             any(a.name in ("min", "max") for a in n.attribute)):
        names = []
        for bound in ("min", "max"):
            value = attr(node, bound)
            if value is None:
                names.append("")
                continue
            name = unique_name(copy.graph, f"{node.name or node.output[0]}_{bound}_{k}")
            copy.graph.initializer.append(numpy_helper.from_array(np.float32(value), name))
            names.append(name)
        kept = [a for a in node.attribute if a.name not in ("min", "max")]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.input.extend(names)
    return copy


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


def input_hw(model, default=None):
    dims = dims_of(data_inputs(model.graph)[0])
    if len(dims) == 4 and dims[2] and dims[3]:
        return dims[2], dims[3]
    return default
