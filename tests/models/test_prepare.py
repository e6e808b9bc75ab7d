#!/usr/bin/python3
"""models/prepare.py and its package unetseg_models on small synthetic graphs (onnx.helper),
each rewrite checked numerically.

Every rewritten graph is run by OpenCV 4.6 (cv2.dnn) and compared with a numpy reference written
here from the operators' definitions (independent of unetseg_models.reference): the original
graph's meaning must survive the rewrite. Bad input must give a clear message and write nothing.

Run: PYTHONPATH=models /usr/bin/python3 tests/models/test_prepare.py   (python3-onnx,
python3-numpy, python3-opencv; tests/meson.build sets PYTHONPATH)
"""

import os
import subprocess
import sys
import tempfile
import unittest

# OpenCV logs every refused node before raising; the tests read the exception's message instead.
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = os.environ.get("UNETSEG_SOURCE_ROOT") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
from unetseg_models import PrepareError, versions  # noqa: E402  (PYTHONPATH=models)
from unetseg_models.checks import program_opencv  # noqa: E402
from unetseg_models.graph import attr, input_hw  # noqa: E402
from unetseg_models.prepare import prepare_file  # noqa: E402

PREPARE = os.path.join(ROOT, "models", "prepare.py")
FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
rng = np.random.default_rng(7)


# --- numpy references, straight from the operator definitions --------------------------------

def conv2d(x, w, b=None, stride=1, pads=(0, 0, 0, 0)):
    """ONNX Conv, pads = (top, left, bottom, right), one loop per output pixel."""
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    _, _, h, wd = x.shape
    _, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def conv_transpose2d(x, w, b, stride, pads):
    """ONNX ConvTranspose: every input pixel adds its kernel to the output (stride apart),
    then `pads` (top, left, bottom, right) are cut from the full result."""
    n, _, h, wd = x.shape
    _, cout, kh, kw = w.shape
    full = np.zeros((n, cout, (h - 1) * stride + kh, (wd - 1) * stride + kw))
    for i in range(h):
        for j in range(wd):
            full[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += np.einsum(
                "nc,cokl->nokl", x[:, :, i, j], w)
    out = full[:, :, pads[0]:full.shape[2] - pads[2], pads[1]:full.shape[3] - pads[3]]
    return out + b.reshape(1, -1, 1, 1)


def resize_linear(x, out_h, out_w):
    """Bilinear resize with half-pixel centres (ONNX half_pixel = PyTorch align_corners=False)."""
    def axis(size, out):
        src = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, size - 1), src - lo
    y0, y1, fy = axis(x.shape[2], out_h)
    x0, x1, fx = axis(x.shape[3], out_w)
    rows = x[:, :, y0] * (1 - fy)[:, None] + x[:, :, y1] * fy[:, None]
    return rows[:, :, :, x0] * (1 - fx) + rows[:, :, :, x1] * fx


def maxpool2(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# --- graph building ---------------------------------------------------------------------------

def weights(*shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def make_model(nodes, inputs, outputs, inits, opset=13):
    graph = helper.make_graph(nodes, "synthetic", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="test_prepare")
    model.ir_version = 7 if opset >= 13 else 3
    if model.ir_version < 4:  # old IR versions list the initializers as graph inputs too
        model.graph.input.extend(value(t.name, list(t.dims)) for t in inits)
    onnx.checker.check_model(model)
    return model


def value(name, shape, dtype=FLOAT):
    """A graph input/output; shape None: 4-D of unknown size (OpenCV wants a shape there)."""
    return helper.make_tensor_value_info(name, dtype, shape or ["n", "c", "h", "w"])


def read(path):
    with open(path, "rb") as f:
        return f.read()


def opencv_run(path, x):
    net = cv2.dnn.readNetFromONNX(path)
    net.setInput(x.astype(np.float32))
    return net.forward()


class Base(unittest.TestCase):
    def setUp(self):
        self._dir = tempfile.TemporaryDirectory(prefix="test_prepare.")
        self.dir = self._dir.name
        self.log = []

    def tearDown(self):
        self._dir.cleanup()

    def save(self, model, name="in.onnx"):
        path = os.path.join(self.dir, name)
        onnx.save(model, path)
        return path

    def prepare(self, src, steps, **kw):
        out = os.path.join(self.dir, "out.onnx")
        result = prepare_file(src, out, steps, log=self.log.append, **kw)
        return out, result

    def assert_refused(self, src, steps, *fragments, **kw):
        """prepare_file refuses with a message holding every fragment, and writes nothing."""
        before = set(os.listdir(self.dir))
        out = os.path.join(self.dir, "refused.onnx")
        with self.assertRaises(PrepareError) as cm:
            prepare_file(src, out, steps, log=self.log.append, **kw)
        msg = str(cm.exception)
        for f in fragments:
            self.assertIn(f, msg)
        self.assertEqual(set(os.listdir(self.dir)), before, "something was left behind")
        return msg

    def assert_opencv_refuses(self, path, fragment):
        with self.assertRaises(cv2.error) as cm:
            cv2.dnn.readNetFromONNX(path)
        self.assertIn(fragment, str(cm.exception))


# --- the rewrites ---------------------------------------------------------------------------

class Fp16ToFp32(Base):
    """fp16 weights and constants, with the Cast chains an fp16 converter leaves around them."""

    @staticmethod
    def model():
        w = weights(4, 3, 3, 3).astype(np.float16)
        b = weights(4).astype(np.float16)
        k = weights(1, 4, 1, 1).astype(np.float16)
        nodes = [
            # A chain: fp32 -> fp16 -> fp32 -> fp16, as converters leave at graph boundaries.
            helper.make_node("Cast", ["x"], ["x16"], to=FLOAT16),
            helper.make_node("Cast", ["x16"], ["x32"], to=FLOAT),
            helper.make_node("Cast", ["x32"], ["x16b"], to=FLOAT16),
            helper.make_node("Conv", ["x16b", "w", "b"], ["c"], kernel_shape=[3, 3],
                             pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(k, "k")),
            helper.make_node("Add", ["r", "k"], ["a"]),
            helper.make_node("Cast", ["a"], ["y"], to=FLOAT),  # the graph output is a Cast
        ]
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
        model = make_model(nodes, [value("x", [1, 3, 8, 8])], [value("y", [1, 4, 8, 8])], inits)
        return model, (w, b, k)

    def test_exact_and_opencv_loads(self):
        model, (w, b, k) = self.model()
        src = self.save(model)
        self.assert_opencv_refuses(src, "FLOAT16")
        out, result = self.prepare(src, ["fp16_to_fp32"])
        prepared = onnx.load(out)
        self.assertFalse([n for n in prepared.graph.node if n.op_type == "Cast"])
        self.assertTrue(all(t.data_type == FLOAT for t in prepared.graph.initializer))
        self.assertEqual([o.name for o in prepared.graph.output], ["y"])
        x = rng.random((1, 3, 8, 8)).astype(np.float32)
        # fp16 -> fp32 is exact: the prepared model computes the source's layers in fp32 with
        # the very same weight values.
        want = np.maximum(conv2d(x, w.astype(np.float64), b.astype(np.float64),
                                 pads=(1, 1, 1, 1)), 0) + k.astype(np.float64)
        got = opencv_run(out, x)
        self.assertLess(np.abs(got - want).max(), 1e-5)
        # The built-in check compared with the source run as fp16 (rounded activations).
        self.assertLess(result["max_abs_diff"], 1e-2)
        self.assertTrue(any("Cast nodes removed" in line for line in self.log))

    def test_auto_steps_find_it(self):
        model, _ = self.model()
        self.assertEqual(versions.auto_steps(model), ["fp16_to_fp32"])


class ConvTransposePads(Base):
    """Asymmetric ConvTranspose pads (TensorFlow 'SAME', as in the Prisma U-Net)."""

    @staticmethod
    def model(pads, opset=13, dynamic=False):
        w, b = weights(4, 3, 3, 3), weights(3)
        nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["t"], strides=[2, 2],
                                  kernel_shape=[3, 3], pads=pads),
                 helper.make_node("Sigmoid", ["t"], ["y"])]
        shape = [1, 4, "h", "w"] if dynamic else [1, 4, 5, 6]
        model = make_model(nodes, [value("x", shape)], [value("y", None)],
                           [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
                           opset=opset)
        return model, w, b

    def check(self, pads, opset):
        model, w, b = self.model(pads, opset)
        src = self.save(model)
        self.assert_opencv_refuses(src, "asymmetric padding")
        out, result = self.prepare(src, ["fix_conv_transpose_pads"])
        x = rng.random((1, 4, 5, 6)).astype(np.float32)
        want = sigmoid(conv_transpose2d(x, w, b, 2, pads))
        got = opencv_run(out, x)
        self.assertEqual(got.shape, want.shape)
        self.assertLess(np.abs(got - want).max(), 1e-5)
        self.assertLess(result["max_abs_diff"], 1e-5)  # vs unetseg_models' own numpy reference
        node = [n for n in onnx.load(out).graph.node if n.op_type == "ConvTranspose"][0]
        p = attr(node, "pads")
        self.assertEqual(p[:2], p[2:])

    def test_end_pads_opset13(self):
        self.check([0, 0, 1, 1], 13)   # Slice with input tensors

    def test_end_pads_opset7(self):
        self.check([0, 0, 1, 1], 7)    # Slice with attributes (opset < 10)

    def test_mixed_pads(self):
        self.check([1, 0, 0, 2], 13)   # extra rows at the top, extra columns at the right

    def test_unknown_spatial_size(self):
        # No fixed size in the graph: the crop is written with negative ends (or "to the end"),
        # which OpenCV must read the same way at run time, at any input size.
        for pads in ([0, 0, 1, 1], [1, 1, 0, 0], [1, 0, 0, 1]):
            model, w, b = self.model(pads, dynamic=True)
            src = self.save(model)
            out, _ = self.prepare(src, ["fix_conv_transpose_pads"], do_check=False)
            for shape in ((1, 4, 5, 6), (1, 4, 7, 4)):
                x = rng.random(shape).astype(np.float32)
                want = sigmoid(conv_transpose2d(x, w, b, 2, pads))
                got = opencv_run(out, x)
                self.assertEqual(got.shape, want.shape, pads)
                self.assertLess(np.abs(got - want).max(), 1e-5, pads)


class FixInputSize(Base):
    """Resize sizes frozen by the exporter, as PyTorch's F.interpolate(x, size=y.shape[2:])
    traces them (U2-Net/ISNet): Concat(Shape(x)[0:2], constant [H, W]); plus the other forms."""

    @staticmethod
    def model(form="concat"):
        # A tiny U-Net at 32x32: 32 -> pool 16 -> pool 8, then up to 16 and 32 with skips.
        w = {k: weights(*s) for k, s in
             {"w1": (4, 3, 3, 3), "w2": (4, 4, 3, 3), "w3": (4, 4, 3, 3),
              "w4": (4, 8, 3, 3), "w5": (1, 8, 3, 3)}.items()}
        nodes, inits = [], [numpy_helper.from_array(v, k) for k, v in w.items()]

        def conv(x, wname, y):
            nodes.append(helper.make_node("Conv", [x, wname], [y], kernel_shape=[3, 3],
                                          pads=[1, 1, 1, 1]))

        def up(x, size, y):
            if form == "scales":
                s = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), y + "_s")
                inits.append(s)
                # (OpenCV 4.6 needs coordinate_transformation_mode spelled out for "linear",
                # although half_pixel is the ONNX default.)
                nodes.append(helper.make_node("Resize", [x, "", y + "_s"], [y], mode="linear",
                                              coordinate_transformation_mode="half_pixel"))
                return
            if form == "concat":
                nodes.extend([
                    helper.make_node("Shape", [x], [y + "_shape"]),
                    helper.make_node("Constant", [], [y + "_0"], value=numpy_helper.from_array(
                        np.array([0], np.int64))),
                    helper.make_node("Constant", [], [y + "_2"], value=numpy_helper.from_array(
                        np.array([2], np.int64))),
                    helper.make_node("Slice", [y + "_shape", y + "_0", y + "_2", y + "_0"],
                                     [y + "_nc"]),
                    helper.make_node("Constant", [], [y + "_hw"], value=numpy_helper.from_array(
                        np.array([size, size], np.int64))),
                    helper.make_node("Concat", [y + "_nc", y + "_hw"], [y + "_sizes"], axis=0)])
            else:  # "constant": the whole sizes tensor is an initializer
                inits.append(numpy_helper.from_array(np.array([1, 4, size, size], np.int64),
                                                     y + "_sizes"))
            nodes.append(helper.make_node("Resize", [x, "", "", y + "_sizes"], [y], mode="linear",
                                          coordinate_transformation_mode="half_pixel"))

        def pool(x, y):
            nodes.append(helper.make_node("MaxPool", [x], [y], kernel_shape=[2, 2], strides=[2, 2]))

        conv("x", "w1", "e1")                                  # 32
        pool("e1", "p1")
        conv("p1", "w2", "e2")                                 # 16
        pool("e2", "p2")
        conv("p2", "w3", "e3")                                 # 8
        up("e3", 16, "u3")
        nodes.append(helper.make_node("Concat", ["u3", "e2"], ["c2"], axis=1))
        conv("c2", "w4", "d2")                                 # 16
        up("d2", 32, "u2")
        nodes.append(helper.make_node("Add", ["u2", "e1"], ["s1"]))
        nodes.append(helper.make_node("Concat", ["s1", "e1"], ["c1"], axis=1))
        conv("c1", "w5", "d1")
        nodes.append(helper.make_node("Sigmoid", ["d1"], ["y"]))
        model = make_model(nodes, [value("x", [1, 3, 32, 32])], [value("y", [1, 1, 32, 32])], inits)
        return model, w

    @staticmethod
    def reference(x, w):
        """The same network at any size: each upsampling goes to its skip's size."""
        e1 = conv2d(x, w["w1"], pads=(1, 1, 1, 1))
        e2 = conv2d(maxpool2(e1), w["w2"], pads=(1, 1, 1, 1))
        e3 = conv2d(maxpool2(e2), w["w3"], pads=(1, 1, 1, 1))
        d2 = conv2d(np.concatenate([resize_linear(e3, *e2.shape[2:]), e2], 1), w["w4"],
                    pads=(1, 1, 1, 1))
        s1 = resize_linear(d2, *e1.shape[2:]) + e1
        return sigmoid(conv2d(np.concatenate([s1, e1], 1), w["w5"], pads=(1, 1, 1, 1)))

    def check(self, form, size, shape_hw):
        model, w = self.model(form)
        src = self.save(model)
        out, result = self.prepare(src, [f"fix_input_size:{size}"])
        x = rng.random((1, 3) + shape_hw).astype(np.float32)
        got = opencv_run(out, x)
        want = self.reference(x, w)
        self.assertEqual(got.shape, want.shape)
        self.assertLess(np.abs(got - want).max(), 1e-5)
        self.assertLess(result["max_abs_diff"], 1e-5)  # OpenCV vs numpy on the prepared graph
        self.assertIn("resized_max_abs_diff", result)  # and the source at 32, compared resized
        self.assertEqual(input_hw(onnx.load(out)), shape_hw)

    def test_concat_form(self):
        self.check("concat", "16", (16, 16))

    def test_concat_form_not_square(self):
        self.check("concat", "24x40", (40, 24))  # WxH

    def test_constant_form(self):
        self.check("constant", "48", (48, 48))

    def test_scales_need_nothing(self):
        # Scales do not depend on the input size: only the input shape changes.
        self.check("scales", "64", (64, 64))

    def test_source_size_frozen(self):
        # Without the rewrite, OpenCV (like any runtime) gets the frozen 16/32 at another size:
        # the graph cannot run at 16x16. This is the failure the step fixes.
        model, _ = self.model("concat")
        model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 16
        model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 16
        src = self.save(model)
        with self.assertRaises(cv2.error):
            opencv_run(src, rng.random((1, 3, 16, 16)))

    def test_refuses_sizes_that_do_not_divide(self):
        model, _ = self.model("concat")
        src = self.save(model)
        # The first upsampling targets 16 at 32, which would be 15.5 at 31: refused, naming the
        # node and the sizes that work (30 works: 30 -> 15 -> 7, upsampled to 15 and 30).
        msg = self.assert_refused(src, ["fix_input_size:31"], "fix_input_size:31",
                                  "multiples of 2", "30, 32", "15.5")
        self.assertIn("Resize 'u3'", msg)
        self.assert_refused(src, ["fix_input_size:32x31"], "height", "multiples of 2")

    def test_bad_size_argument(self):
        model, _ = self.model("concat")
        src = self.save(model)
        self.assert_refused(src, ["fix_input_size:big"], "bad input size 'big'")
        self.assert_refused(src, ["fix_input_size:0"], "1..8192")


class KeepOutput(Base):
    """Several outputs (U2-Net's d0..d6) reduced to the one the element reads."""

    @staticmethod
    def model():
        w = {k: weights(*s) for k, s in {"wa": (4, 3, 3, 3), "w0": (1, 4, 3, 3),
                                         "w1": (1, 4, 1, 1), "w2": (2, 4, 3, 3)}.items()}
        nodes = [
            helper.make_node("Conv", ["x", "wa"], ["a"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["a"], ["r"]),
            helper.make_node("Conv", ["r", "w0"], ["c0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["c0"], ["d0"]),
            helper.make_node("Conv", ["r", "w1"], ["c1"], kernel_shape=[1, 1]),
            helper.make_node("Sigmoid", ["c1"], ["d1"]),
            helper.make_node("Conv", ["r", "w2"], ["d2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        ]
        model = make_model(nodes, [value("x", [1, 3, 12, 12])],
                           [value("d0", None), value("d1", None), value("d2", None)],
                           [numpy_helper.from_array(v, k) for k, v in w.items()])
        return model, w

    def test_keeps_one(self):
        model, w = self.model()
        src = self.save(model)
        out, result = self.prepare(src, ["keep_output:d1"])
        prepared = onnx.load(out)
        self.assertEqual([o.name for o in prepared.graph.output], ["d1"])
        self.assertEqual(sorted(t.name for t in prepared.graph.initializer), ["w1", "wa"])
        self.assertEqual(len(prepared.graph.node), 4)
        x = rng.random((1, 3, 12, 12)).astype(np.float32)
        want = sigmoid(conv2d(np.maximum(conv2d(x, w["wa"], pads=(1, 1, 1, 1)), 0), w["w1"]))
        self.assertLess(np.abs(opencv_run(out, x) - want).max(), 1e-5)
        self.assertLess(result["max_abs_diff"], 1e-5)  # vs numpy on the source's d1

    def test_unknown_output(self):
        model, _ = self.model()
        src = self.save(model)
        self.assert_refused(src, ["keep_output:d9"], "no output 'd9'", "d0, d1, d2")


class Combined(Base):
    def test_isnet_like_order(self):
        """The catalog's ISNet steps on an fp16 graph with frozen sizes and side outputs."""
        model, w = FixInputSize.model("concat")
        # Make it fp16 inside, as onnxruntime's converter does, and add a side output.
        for i, t in enumerate(model.graph.initializer):
            a = numpy_helper.to_array(t)
            if a.dtype == np.float32:
                model.graph.initializer[i].CopyFrom(
                    numpy_helper.from_array(a.astype(np.float16), t.name))
        model.graph.node[0].input[0] = "x16"
        model.graph.node.insert(0, helper.make_node("Cast", ["x"], ["x16"], to=FLOAT16))
        model.graph.node[-1].output[0] = "y16"
        model.graph.node.append(helper.make_node("Cast", ["y16"], ["y"], to=FLOAT))
        model.graph.node.append(helper.make_node("Cast", ["e3"], ["side"], to=FLOAT))
        model.graph.output.append(value("side", None))
        src = self.save(model)
        out, result = self.prepare(src, ["keep_output:y", "fp16_to_fp32", "fix_input_size:16"])
        x = rng.random((1, 3, 16, 16)).astype(np.float32)
        w16 = {k: v.astype(np.float16).astype(np.float64) for k, v in w.items()}
        want = FixInputSize.reference(x, w16)
        self.assertLess(np.abs(opencv_run(out, x) - want).max(), 1e-5)
        self.assertEqual([o.name for o in onnx.load(out).graph.output], ["y"])


# --- bad input --------------------------------------------------------------------------------

class BadInput(Base):
    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_missing(self):
        self.assert_refused(os.path.join(self.dir, "nope.onnx"), [], "nope.onnx: no such file")

    def test_directory(self):
        os.mkdir(os.path.join(self.dir, "d.onnx"))
        self.assert_refused(os.path.join(self.dir, "d.onnx"), [], "is a directory")

    def test_empty(self):
        self.assert_refused(self.write("empty.onnx", b""), [], "empty.onnx is empty")

    def test_not_onnx(self):
        path = self.write("text.onnx", b"<html>404 Not Found</html>\n" * 10)
        self.assert_refused(path, [], "text.onnx is not", "Fetch it again")
        path = self.write("random.onnx", np.random.default_rng(3).bytes(4096))
        self.assert_refused(path, [], "random.onnx is not", "sha256")

    def test_truncated(self):
        model, _ = KeepOutput.model()
        data = model.SerializeToString()
        for cut in (len(data) // 3, len(data) // 2, len(data) - 7):
            path = self.write(f"cut{cut}.onnx", data[:cut])
            self.assert_refused(path, [], f"cut{cut}.onnx", "truncated")

    def test_graph_opencv_cannot_load(self):
        # A valid ONNX graph with an op OpenCV 4.6 does not implement: refused with OpenCV's own
        # message, nothing written.
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
                 helper.make_node("Hardmax", ["c"], ["y"], axis=1)]
        model = make_model(nodes, [value("x", [1, 3, 8, 8])], [value("y", None)],
                           [numpy_helper.from_array(weights(2, 3, 1, 1), "w")])
        src = self.save(model)
        self.assert_refused(src, [], "OpenCV 4.6.0 cannot load the prepared model", "Hardmax")

    def test_step_that_does_not_apply(self):
        # fix_input_size on a model with two inputs: refused, naming the step and the inputs.
        nodes = [helper.make_node("Add", ["a", "b"], ["y"])]
        model = make_model(nodes, [value("a", [1, 3, 8, 8]), value("b", [1, 3, 8, 8])],
                           [value("y", None)], [])
        src = self.save(model)
        self.assert_refused(src, ["fix_input_size:16"], "step fix_input_size:16", "one input",
                            "a, b")

    def test_unknown_step(self):
        model, _ = KeepOutput.model()
        src = self.save(model)
        self.assert_refused(src, ["make_it_fast"], "unknown preparation step 'make_it_fast'")


class CommandLine(Base):
    def run_cli(self, *args):
        return subprocess.run([sys.executable, PREPARE, *args], capture_output=True, text=True)

    def test_help_teaches(self):
        r = self.run_cli("--help")
        self.assertEqual(r.returncode, 0)
        for word in ("--fp32", "--fix-pads", "--input-size", "--keep-output", "--steps",
                     "--no-check", "readNetFromONNX", "examples"):
            self.assertIn(word, r.stdout)

    def test_auto_steps_and_refusal(self):
        model, _, _ = ConvTransposePads.model([0, 0, 1, 1])
        src = self.save(model)
        out = os.path.join(self.dir, "cli.onnx")
        r = self.run_cli(src, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("this model needs: fix_conv_transpose_pads", r.stdout)
        self.assertIn("max |OpenCV(prepared) - numpy(source)|", r.stdout)
        self.assertTrue(os.path.exists(out))
        # --input-size that does not fit: exit 1, a message, and the old output untouched.
        model, _ = FixInputSize.model("concat")
        src2 = self.save(model, "unet.onnx")
        before = read(out)
        r = self.run_cli(src2, out, "--input-size", "31")
        self.assertEqual(r.returncode, 1)
        self.assertIn("multiples of 2", r.stderr)
        self.assertIn("nothing was written", r.stderr)
        self.assertEqual(read(out), before)
        self.assertFalse([f for f in os.listdir(self.dir) if f.endswith(".tmp")])

    def test_steps_list(self):
        model, _ = FixInputSize.model("concat")
        src = self.save(model)
        out = os.path.join(self.dir, "s.onnx")
        r = self.run_cli(src, out, "--steps", "fix_input_size:64x32", "--reference", "none")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(input_hw(onnx.load(out)), (32, 64))



# --- the target OpenCV version (--for-opencv) -------------------------------------------------

# unetseg-segment of the build under test (meson passes it): its OpenCV is the one these tests
# prepare for and check with, so each build proves its own version's path for real.
SEGMENT = os.environ.get("UNETSEG_SEGMENT") or os.path.join(ROOT, "build", "tools",
                                                            "unetseg-segment")


def is_sorted(graph):
    made = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    for n in graph.node:
        if any(i not in made for i in n.input):
            return False
        made.update(n.output)
    return True


class ForOpenCV(Base):
    """Which rewrites each OpenCV version gets, and how a model for another OpenCV than the cv2
    here is checked."""

    @staticmethod
    def fp16_unsorted():
        """A 1-channel probability map from fp16 weights, its nodes out of order as in ISNet (the
        Cast making the Conv's input comes after the Conv); 16x16."""
        w = weights(1, 3, 3, 3).astype(np.float16)
        nodes = [
            helper.make_node("Conv", ["x16", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["c"], ["s"]),
            helper.make_node("Cast", ["s"], ["y"], to=FLOAT),
            helper.make_node("Cast", ["x"], ["x16"], to=FLOAT16),
        ]
        graph = helper.make_graph(nodes, "unsorted", [value("x", [1, 3, 16, 16])],
                                  [value("y", [1, 1, 16, 16])],
                                  initializer=[numpy_helper.from_array(w, "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 7
        return model, w

    def sidecar(self, size=16):
        path = os.path.join(self.dir, "spec.json")
        with open(path, "w") as f:
            f.write('{"name": "t", "input": {"width": %d, "height": %d}, '
                    '"output": {"kind": "probability"}}' % (size, size))
        return path

    def fake_program(self, body):
        """A stand-in for unetseg-segment: a script run as PROGRAM --model M IMAGE --npy MAP."""
        path = os.path.join(self.dir, "fake-segment")
        with open(path, "w") as f:
            f.write(f"#!{sys.executable}\nimport sys, numpy as np\n"
                    "a = sys.argv; npy = a[a.index('--npy') + 1]; model = a[a.index('--model') + 1]\n"
                    + body)
        os.chmod(path, 0o755)
        return path

    def test_versions(self):
        self.assertEqual(versions.parse_opencv_version("4.10"), (4, 10))
        self.assertEqual(versions.parse_opencv_version("4.6.0"), (4, 6))  # as cv2.__version__
        self.assertEqual(versions.running_opencv(), versions.parse_opencv_version(cv2.__version__))
        for bad in ("banana", "4", "4.x", "", "4.10.0.0.1"):
            with self.assertRaises(PrepareError) as cm:
                versions.parse_opencv_version(bad)
            self.assertIn("give it as X.Y", str(cm.exception))
        with self.assertRaises(PrepareError) as cm:
            versions.parse_opencv_version("4.5")
        self.assertIn("oldest OpenCV the project supports (4.6)", str(cm.exception))

    def test_auto_steps_fp16(self):
        model, _ = self.fp16_unsorted()
        self.assertEqual(versions.auto_steps(model, (4, 6)), ["fp16_to_fp32"])
        self.assertEqual(versions.auto_steps(model, (4, 8)), ["fp16_to_fp32"])  # not measured
        self.assertEqual(versions.auto_steps(model, (4, 10)), [])
        self.assertEqual(versions.auto_steps(model, (5, 0)), [])
        # Without a version: the cv2 here.
        self.assertEqual(versions.auto_steps(model), versions.auto_steps(
            model, versions.running_opencv()))
        (step, needed, why), = versions.plan_steps(model, (4, 10))
        self.assertEqual((step, needed), ("fp16_to_fp32", False))
        self.assertIn("not needed for OpenCV 4.10", why)
        self.assertIn("was not measured", versions.plan_steps(model, (4, 8))[0][2])

    def test_auto_steps_asymmetric_pads(self):
        model, _, _ = ConvTransposePads.model([0, 0, 1, 1])
        for version in ((4, 6), (4, 8), (4, 10), (5, 0)):
            self.assertEqual(versions.auto_steps(model, version), ["fix_conv_transpose_pads"])
        # fp16 and asymmetric pads together: 4.10 gets the pads rewrite only.
        for i, t in enumerate(model.graph.initializer):
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(t).astype(np.float16), t.name))
        self.assertEqual(versions.auto_steps(model, (4, 6)),
                         ["fp16_to_fp32", "fix_conv_transpose_pads"])
        self.assertEqual(versions.auto_steps(model, (4, 10)), ["fix_conv_transpose_pads"])

    def test_sorted_even_without_steps(self):
        # For 4.10 the fp16 graph needs no step, but its nodes still get sorted (4.10 refuses
        # the unsorted file); the fp16 weights and Casts stay as they are.
        model, w = self.fp16_unsorted()
        src = self.save(model)
        self.assertFalse(is_sorted(onnx.load(src).graph))
        out, result = self.prepare(src, [], opencv=(4, 10))
        self.assertIsNone(result)  # cv2 here is 4.6: it cannot prove a 4.10 model
        prepared = onnx.load(out)
        self.assertTrue(is_sorted(prepared.graph))
        self.assertEqual([t.data_type for t in prepared.graph.initializer], [FLOAT16])
        np.testing.assert_array_equal(numpy_helper.to_array(prepared.graph.initializer[0]), w)
        self.assertEqual(sum(n.op_type == "Cast" for n in prepared.graph.node), 2)
        self.assert_opencv_refuses(out, "FLOAT16")  # for 4.10 only, indeed
        text = "\n".join(self.log)
        self.assertIn("1 of 4 nodes read a value made further down", text)
        self.assertIn("NOT CHECKED: OpenCV 4.10 has not loaded", text)
        self.assertIn("unetseg-segment --model", text)

    def test_cli(self):
        model, _ = self.fp16_unsorted()
        src = self.save(model)
        out = os.path.join(self.dir, "cli.onnx")
        r = self.run_cli(src, out, "--for-opencv", "banana")
        self.assertEqual(r.returncode, 2)
        self.assertIn("argument --for-opencv: bad OpenCV version 'banana': give it as X.Y",
                      r.stderr)
        r = self.run_cli(src, out, "--for-opencv", "4.5")
        self.assertEqual(r.returncode, 2)
        self.assertIn("older than the oldest", r.stderr)
        self.assertFalse(os.path.exists(out))
        # 4.10: fp16_to_fp32 skipped, and said why; fp16 initializers kept; written unchecked.
        r = self.run_cli(src, out, "--for-opencv", "4.10")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("for OpenCV 4.10 this model needs: nothing", r.stdout)
        self.assertIn("fp16_to_fp32: skipped, not needed for OpenCV 4.10", r.stdout)
        self.assertIn("NOT CHECKED", r.stdout)
        self.assertEqual([t.data_type for t in onnx.load(out).graph.initializer], [FLOAT16])
        # The default is the cv2 here (4.6): converted, and checked by cv2.
        r = self.run_cli(src, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"for OpenCV {versions.version_text(versions.running_opencv())} this model "
                      "needs: fp16_to_fp32", r.stdout)
        self.assertIn("max |OpenCV(prepared)", r.stdout)
        self.assertEqual([t.data_type for t in onnx.load(out).graph.initializer], [FLOAT])
        # Steps asked for run as asked; --for-opencv says what they leave out or need not do.
        r = self.run_cli(src, out, "--fp32", "--for-opencv", "4.10", "--no-check")
        self.assertIn("note: fp16_to_fp32 runs as asked, but is not needed", r.stdout)
        pads_src = self.save(ConvTransposePads.model([0, 0, 1, 1])[0], "pads.onnx")
        r = self.run_cli(pads_src, out, "--input-size", "5x5", "--for-opencv", "4.10",
                         "--no-check")
        self.assertIn("warning: fix_conv_transpose_pads is not in the steps, but OpenCV 4.10 "
                      "needs it", r.stdout)
        # --check-with needs the sidecar.
        r = self.run_cli(src, os.path.join(self.dir, "x.onnx"), "--for-opencv", "4.10",
                         "--check-with", "true")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--check-with needs the model's sidecar", r.stderr)

    run_cli = CommandLine.run_cli

    def test_check_with_program_refusal(self):
        # The program's exit status and message decide; nothing is written when it refuses.
        model, _ = self.fp16_unsorted()
        src = self.save(model)
        fail = self.fake_program("sys.stderr.write('unetseg-segment: Unsupported data type\\n')"
                                 "\nsys.exit(1)\n")
        self.assert_refused(src, [], "OpenCV 4.10", "refuses the prepared model (exit 1)",
                            "Unsupported data type", opencv=(4, 10), check_with=fail,
                            sidecar=self.sidecar())
        nan = self.fake_program("np.save(npy, np.full((16, 16), np.nan, np.float32))\n")
        self.assert_refused(src, [], "NaN", opencv=(4, 10), check_with=nan,
                            sidecar=self.sidecar())
        # A map that runs but is not what the graph computes: refused by the numpy comparison.
        wrong = self.fake_program("np.save(npy, np.zeros((16, 16), np.float32))\n")
        self.assert_refused(src, [], "differs from the numpy run", opencv=(4, 10),
                            check_with=wrong, sidecar=self.sidecar())
        self.assert_refused(src, [], "no such executable program", opencv=(4, 10),
                            check_with=os.path.join(self.dir, "nope"), sidecar=self.sidecar())
        self.assert_refused(src, [], "says input 32x32", opencv=(4, 10),
                            check_with=wrong, sidecar=self.sidecar(32))

    def test_check_with_program_sees_model_and_sidecar(self):
        # The program gets the written model with its sidecar beside it (M.json for M.onnx), and
        # a picture at the model's size; a right map passes. This fake computes the map itself
        # from the numpy evaluator, as a correct OpenCV would.
        model, _ = self.fp16_unsorted()
        src = self.save(model)
        ok = self.fake_program(
            "import json, os, cv2, onnx\n"
            "from unetseg_models.checks import make_blob\n"  # through PYTHONPATH, inherited
            "from unetseg_models.reference import reference_run\n"
            "spec = json.load(open(os.path.splitext(model)[0] + '.json'))\n"
            "img = cv2.cvtColor(cv2.imread(a[3]), cv2.COLOR_BGR2RGB)\n"
            "assert img.shape == (16, 16, 3), img.shape\n"
            "blob = make_blob(img, 16, 16, spec['input'])\n"
            "m = onnx.load(model)\n"
            "y = reference_run(m, {'x': blob})['y']\n"
            "np.save(npy, y[0, 0].astype(np.float32))\n"
            "sys.stderr.write('unetseg-segment: t on 16x16: forward 1.5 ms\\n')\n")
        out, result = self.prepare(src, [], opencv=(4, 10), check_with=ok,
                                   sidecar=self.sidecar())
        self.assertEqual(result["max_abs_diff"], 0)
        self.assertAlmostEqual(result["forward_s"], 0.0015)
        text = "\n".join(self.log)
        self.assertIn("check: OpenCV 4.10 (", text)
        self.assertNotIn("NOT CHECKED", text)

    def test_this_builds_opencv_loads_what_was_prepared_for_it(self):
        """The real thing: the unsorted fp16 graph prepared for the OpenCV of this build's
        unetseg-segment (4.6: converted to fp32; 4.10: sorted, fp16 kept) is loaded and run by
        that OpenCV, and computes what the graph defines."""
        version = program_opencv(SEGMENT)
        self.assertIn(version, [(4, 6), (4, 10)], f"{SEGMENT}: OpenCV {version}")
        model, _ = self.fp16_unsorted()
        src = self.save(model)
        out, result = self.prepare(src, versions.auto_steps(model, version), opencv=version,
                                   check_with=SEGMENT, sidecar=self.sidecar())
        self.assertLess(result["max_abs_diff"], 1e-2)
        kept = FLOAT16 if version >= (4, 10) else FLOAT
        self.assertEqual([t.data_type for t in onnx.load(out).graph.initializer], [kept])

    def test_check_with_a_program_of_another_opencv_is_refused(self):
        version = program_opencv(SEGMENT)
        # A target that is neither the cv2 here (4.6, whose own check would be used) nor the
        # program's OpenCV.
        other = (4, 10) if version == (4, 6) else (4, 8)
        model, _ = self.fp16_unsorted()
        src = self.save(model)
        self.assert_refused(src, [], f"runs OpenCV {version[0]}.{version[1]} (libopencv_dnn), "
                            f"not {other[0]}.{other[1]}",
                            opencv=other, check_with=SEGMENT, sidecar=self.sidecar())


if __name__ == "__main__":
    cv2.setNumThreads(2)
    unittest.main(verbosity=2)
