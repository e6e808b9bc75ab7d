"""TensorFlow.js graph models (model.json + weight shards) to ONNX that OpenCV DNN runs: the
reading of the model and the conversion's entry point (convert_tfjs; the command line is
models/convert_tfjs.py).

Why a converter of our own: the models the project wants for live use (MediaPipe Selfie, Robust
Video Matting) are published as TF.js graph models, tf2onnx needs TensorFlow (not a Debian
package), and a TF.js graph is small enough to translate directly: a frozen TensorFlow GraphDef
in JSON plus quantised weights.

How (tfjs_ops.py): the graph is evaluated once for a fixed input size, node by node. A value is
either a constant (numpy), a tensor known only at run time (an ONNX tensor with a static shape),
or dead (the branch of a Switch that is not taken). Everything that depends only on shapes and
constants (Shape, StridedSlice, Pack, the downsample ratio...) is computed here, so the ONNX graph
holds only the real work; control flow is resolved for the constants given (RVM's
downsample_ratio). Run-time tensors of rank 4 are NCHW in ONNX (TF.js is NHWC): weights HWIO ->
OIHW, depthwise -> group convolution, axes remapped. Then tfjs_simplify.py folds what OpenCV
would run as separate layers (Pad into the convolution's pads, bias/scale constants into the
convolution) and drops what no output needs.

Runs with Debian's /usr/bin/python3 and python3-numpy, python3-onnx.
"""

import json
import os

import numpy as np

from . import PrepareError

# Bump when the converter writes something different for the same model and options:
# fetch.py converts cached models again when it changes.
VERSION = "1"

DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
QUANTIZED = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}
TF_DTYPES = {"DT_FLOAT": np.float32, "DT_INT32": np.int32, "DT_BOOL": np.bool_,
             "DT_INT64": np.int64, "DT_HALF": np.float16, "DT_UINT8": np.uint8}


class Node:
    """One TF node: op, data inputs as (producer, output index), control inputs, attributes."""

    def __init__(self, raw, where):
        self.name = raw.get("name")
        self.op = raw.get("op")
        if not self.name or not self.op:
            raise PrepareError(f"{where}: a node without a name or op: {json.dumps(raw)[:200]}")
        self.inputs, self.control = [], []
        for text in raw.get("input", []):
            if text.startswith("^"):
                self.control.append(text[1:])
            else:
                src, _, k = text.rpartition(":")
                if src and k.isdigit():
                    self.inputs.append((src, int(k)))
                else:
                    self.inputs.append((text, 0))
        self.attr = {k: parse_attr(v) for k, v in raw.get("attr", {}).items()}

    def get(self, name, default=None):
        return self.attr.get(name, default)

    def __repr__(self):
        return f"{self.op} '{self.name}'"


def parse_attr(value):
    """A TF AttrValue in JSON form -> a Python value (ints, floats, bools, str, lists, dtypes)."""
    if "list" in value:
        lst = value["list"]
        for key in ("i", "f", "b", "s", "type"):
            if key in lst:
                return [parse_attr({key: v}) for v in lst[key]]
        return []
    if "i" in value:
        return int(value["i"])
    if "f" in value:
        return float(value["f"])
    if "b" in value:
        return bool(value["b"])
    if "s" in value:
        import base64
        return base64.b64decode(value["s"]).decode("latin1")
    if "type" in value:
        return value["type"]
    return value  # shape, tensor, func: read where needed


class TfjsModel:
    """A TF.js graph model read from disk: nodes (by name, in file order), weights (numpy, by
    name, dequantised), the signature's inputs and outputs ({key: node name})."""

    def __init__(self, path):
        self.path = path
        data = read_json(path)
        topo = data.get("modelTopology")
        if data.get("format") not in (None, "graph-model") or not isinstance(topo, dict) \
                or "node" not in topo:
            raise PrepareError(f"{path} is not a TF.js graph model (format "
                               f"{data.get('format')!r}; a layers model needs converting with "
                               "tensorflowjs_converter --output_format tfjs_graph_model first)")
        if any(topo.get("library", {}).get("function", [])):
            raise PrepareError(f"{path}: the graph has functions (control flow v2: If/While), "
                               "which this converter does not translate")
        self.nodes = {}
        for k, raw in enumerate(topo["node"]):
            node = Node(raw, f"{path}: node #{k}")
            self.nodes[node.name] = node
        self.weights = read_weights(path, data.get("weightsManifest", []))
        sig = data.get("signature") or {}
        self.inputs = {strip(k): strip(v["name"]) for k, v in sig.get("inputs", {}).items()}
        self.outputs = {strip(k): strip(v["name"]) for k, v in sig.get("outputs", {}).items()}
        if not self.inputs:
            self.inputs = {n.name: n.name for n in self.nodes.values() if n.op == "Placeholder"}
        if not self.outputs:
            raise PrepareError(f"{path}: the model has no signature, so its outputs are unknown")
        for key, name in list(self.inputs.items()) + list(self.outputs.items()):
            if name not in self.nodes:
                raise PrepareError(f"{path}: the signature names '{key}' as node '{name}', "
                                   "which the graph does not have")


def strip(name):
    """'src:0' -> 'src' (TF names a node's first output NAME:0)."""
    return name[:-2] if name.endswith(":0") else name


def read_json(path):
    if not os.path.isfile(path):
        raise PrepareError(f"{path}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise PrepareError(f"{path} is not readable JSON ({e}): a truncated download? Fetch it "
                           "again and check its sha256.") from None


def read_weights(path, manifest):
    """The weights of every manifest group: its shards concatenated, each weight in order,
    dequantised as TF.js does (io_utils.decodeWeights): uint8/uint16 v * scale + min computed in
    double and stored as float32; float16 widened to float32 exactly."""
    weights = {}
    base = os.path.dirname(path)
    for g, group in enumerate(manifest):
        blobs = []
        for p in group.get("paths", []):
            shard = os.path.join(base, p)
            try:
                with open(shard, "rb") as f:
                    blobs.append(f.read())
            except OSError as e:
                raise PrepareError(f"{path}: cannot read the weight shard {shard}: "
                                   f"{e.strerror or e}") from None
        data = b"".join(blobs)
        pos = 0
        for w in group.get("weights", []):
            name, shape, dtype = w.get("name"), w.get("shape", []), w.get("dtype")
            quant = w.get("quantization")
            if dtype not in DTYPES:
                raise PrepareError(f"{path}: weight '{name}' has dtype {dtype!r}; the converter "
                                   f"reads {', '.join(DTYPES)}")
            stored = np.dtype(QUANTIZED[quant["dtype"]] if quant else DTYPES[dtype])
            if quant and quant.get("dtype") not in QUANTIZED:
                raise PrepareError(f"{path}: weight '{name}' is quantised as "
                                   f"{quant.get('dtype')!r}; known: {', '.join(QUANTIZED)}")
            count = int(np.prod(shape, dtype=np.int64))
            size = count * stored.itemsize
            if pos + size > len(data):
                raise PrepareError(f"{path}: the weight shards of group {g} hold {len(data)} "
                                   f"bytes, weight '{name}' needs bytes {pos}..{pos + size}: a "
                                   "truncated or wrong .bin file?")
            raw = np.frombuffer(data, dtype=stored.newbyteorder("<"), count=count, offset=pos)
            pos += size
            if quant and quant["dtype"] in ("uint8", "uint16"):
                if "min" not in quant or "scale" not in quant:
                    raise PrepareError(f"{path}: weight '{name}' is {quant['dtype']}-quantised "
                                       "without min and scale")
                values = raw.astype(np.float64) * quant["scale"] + quant["min"]
                values = np.round(values) if dtype == "int32" else values
            else:
                values = raw
            weights[name] = np.asarray(values, dtype=DTYPES[dtype]).reshape(shape)
        if pos != len(data):
            raise PrepareError(f"{path}: weight group {g} describes {pos} bytes, its shards hold "
                               f"{len(data)}: the .json and .bin do not belong together")
    return weights


def parse_size(text):
    """'320' or '320x240' (width x height) -> (width, height)."""
    try:
        parts = [int(v) for v in str(text).lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(1 <= v <= 8192 for v in parts):
        raise PrepareError(f"bad size '{text}': give N or WxH, each 1..8192, e.g. 256 or 320x240")
    return parts[0], parts[1]


def convert_tfjs(path, size=None, constants=None, drop_outputs=(), log=print):
    """Converts the TF.js graph model at `path` (its model.json) into an onnx.ModelProto.

    size: (width, height) of the image input (the first input of rank 4); None: the size the
      signature fixes (an error when it fixes none). constants: {input name: value} for inputs
      that are not fed at run time but fixed now, such as RVM's downsample_ratio (control flow on
      them is resolved). drop_outputs: signature outputs to leave out, with everything only they
      need (RVM's fgr)."""
    from .tfjs_ops import Converter
    from .tfjs_simplify import simplify
    model = TfjsModel(path)
    constants = dict(constants or {})
    for name in constants:
        if name not in model.inputs:
            raise PrepareError(f"{path}: the model has no input '{name}' to fix; its inputs: "
                               f"{', '.join(model.inputs)}")
    outputs = dict(model.outputs)
    for name in drop_outputs:
        if name not in outputs:
            raise PrepareError(f"{path}: the model has no output '{name}' to drop; its outputs: "
                               f"{', '.join(model.outputs)}")
        del outputs[name]
    if not outputs:
        raise PrepareError(f"{path}: no output left to convert")
    conv = Converter(model, size, constants, log)
    onnx_model = conv.run(outputs)
    before = len(onnx_model.graph.node)
    notes = simplify(onnx_model)
    log(f"  converted {os.path.basename(path)}: {len(model.nodes)} TF.js nodes -> "
        f"{len(onnx_model.graph.node)} ONNX nodes ({before} before simplifying: {notes})")
    return onnx_model
