#!/usr/bin/python3
"""fix_batch:N (models/unetseg_models/batch.py, prepare.py --batch N) on small synthetic graphs:
a batch-1 graph with the patterns that break OpenCV 4.6 at batch > 1 (Resize sizes [1, C, H, W],
a [1, C, 1, 1] Add/Mul constant, a channel-shuffle Reshape [1, ...]) prepared at batch 3, then
run by OpenCV at batch 1, 2 and 3 on different inputs: every item must equal a numpy reference
of that input alone. Patterns that would mix the frames are refused with the node named, and
the check's batch comparison catches a net that mixes them.

Run: PYTHONPATH=models /usr/bin/python3 tests/models/test_batch.py   (tests/meson.build sets it)
"""

import os
import subprocess
import sys
import unittest

os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_prepare import (PREPARE, Base, conv2d, make_model, sigmoid,  # noqa: E402
                          value, weights)
from unetseg_models import PrepareError  # noqa: E402
from unetseg_models.checks import check_batch  # noqa: E402
from unetseg_models.graph import dims_of  # noqa: E402

rng = np.random.default_rng(11)


def forward(path, x):
    net = cv2.dnn.readNetFromONNX(path)
    net.setInput(x.astype(np.float32))
    return net.forward()


class Batch(Base):
    @staticmethod
    def model():
        """x 1x3x8x8 -> Conv 3->4 = c -> c + Relu(c) -> Add k[1,4,1,1] -> Relu -> Resize to
        sizes [1,4,16,16] (nearest) -> Reshape [1,2,2,16,16] -> Transpose (0,2,1,3,4) ->
        Reshape [1,-1,16,16] (a channel shuffle, as in SINet) -> Mul m[1,4,1,1] -> Sigmoid."""
        w, b = weights(4, 3, 3, 3), weights(4)
        k, m = weights(1, 4, 1, 1), weights(1, 4, 1, 1) + 1
        consts = {"w": w, "b": b, "k": k, "m": m,
                  "sizes": np.array([1, 4, 16, 16], np.int64),
                  "split": np.array([1, 2, 2, 16, 16], np.int64),
                  "merge": np.array([1, -1, 16, 16], np.int64)}
        nodes = [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3],
                             pads=[1, 1, 1, 1]),
            # A residual sum, then the constant: OpenCV cannot fold it into the Conv's bias
            # (as it would right after one) and makes it a Scale layer, as in MediaPipe Selfie.
            helper.make_node("Relu", ["c"], ["c1"]),
            helper.make_node("Add", ["c", "c1"], ["e"]),
            helper.make_node("Add", ["k", "e"], ["a"]),
            helper.make_node("Relu", ["a"], ["r"]),
            helper.make_node("Resize", ["r", "", "", "sizes"], ["u"], mode="nearest",
                             coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
            helper.make_node("Reshape", ["u", "split"], ["s5"]),
            helper.make_node("Transpose", ["s5"], ["t5"], perm=[0, 2, 1, 3, 4]),
            helper.make_node("Reshape", ["t5", "merge"], ["sh"]),
            helper.make_node("Mul", ["sh", "m"], ["p"]),
            helper.make_node("Sigmoid", ["p"], ["y"]),
        ]
        inits = [numpy_helper.from_array(v, n) for n, v in consts.items()]
        model = make_model(nodes, [value("x", [1, 3, 8, 8])], [value("y", [1, 4, 16, 16])],
                           inits)
        return model, (w, b, k, m)

    @staticmethod
    def reference(x, w, b, k, m):
        """The graph's meaning for a batch of any size, from the operator definitions."""
        c = conv2d(x, w, b, pads=(1, 1, 1, 1))
        r = np.maximum(c + np.maximum(c, 0) + k, 0)
        u = r.repeat(2, axis=2).repeat(2, axis=3)  # nearest x2, asymmetric, floor
        n = x.shape[0]
        shuffled = u.reshape(n, 2, 2, 16, 16).transpose(0, 2, 1, 3, 4).reshape(n, 4, 16, 16)
        return sigmoid(shuffled * m)

    def test_every_item_of_every_batch_is_its_own(self):
        model, params = self.model()
        src = self.save(model)
        x = rng.random((3, 3, 8, 8)).astype(np.float32)
        # Without the rewrite OpenCV cannot take the batch (the input alone re-declared at 3
        # is not enough): the test below means something.
        naive = onnx.load(src)
        naive.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 3
        naive_path = self.save(naive, "naive.onnx")
        try:
            got = forward(naive_path, x)
            wrong = got.shape[0] != 3 or np.abs(got - self.reference(x, *params)).max() > 1e-4
        except cv2.error:
            wrong = True
        self.assertTrue(wrong, "OpenCV runs the unrewritten graph at batch 3: nothing to test")

        out, result = self.prepare(src, ["fix_batch:3"])
        prepared = onnx.load(out)
        onnx.checker.check_model(prepared)
        self.assertEqual(dims_of(prepared.graph.input[0]), [3, 3, 8, 8])
        self.assertEqual(dims_of(prepared.graph.output[0])[0], 3)
        self.assertFalse(prepared.graph.value_info)
        self.assertTrue(any("2 Reshape shapes" in line and "1 Resize sizes" in line and
                            "2 [1, ...] elementwise constants" in line for line in self.log),
                        self.log)
        self.assertEqual(result["batch"], 3)
        self.assertLess(result["batch_max_abs_diff"], 1e-6)
        for n in (1, 2, 3):
            got = forward(out, x[:n])
            self.assertEqual(got.shape, (n, 4, 16, 16))
            for i in range(n):
                want = self.reference(x[i:i + 1], *params)[0]
                self.assertLess(np.abs(got[i] - want).max(), 1e-4, f"batch {n}, item {i}")
                self.assertLess(np.abs(got[i] - forward(out, x[i:i + 1])[0]).max(), 1e-6)

    def test_crop_and_expand_keep_the_frames(self):
        # A crop on H and W (as fix_conv_transpose_pads writes) and an Expand of the channels
        # (SINet) are per item: accepted, and each item of a batch is its own.
        inits = {"b": np.array([1, 2], np.int64), "e": np.array([7, 2**31 - 1], np.int64),
                 "a": np.array([2, 3], np.int64), "s": np.array([1, 3, 6, 6], np.int64)}
        nodes = [helper.make_node("Slice", ["x", "b", "e", "a"], ["c"]),
                 helper.make_node("Expand", ["c", "s"], ["y"])]
        model = make_model(nodes, [value("x", [1, 1, 8, 8])], [value("y", [1, 3, 6, 6])],
                           [numpy_helper.from_array(v, n) for n, v in inits.items()])
        out, result = self.prepare(self.save(model), ["fix_batch:2"])
        self.assertEqual(result["batch"], 2)
        x = rng.random((2, 1, 8, 8)).astype(np.float32)
        got = forward(out, x)
        self.assertEqual(got.shape, (2, 3, 6, 6))
        for i in range(2):
            want = np.broadcast_to(x[i, :, 1:7, 2:], (3, 6, 6))
            self.assertLess(np.abs(got[i] - want).max(), 1e-6, f"item {i}")

    def test_with_a_new_input_size(self):
        # fix_input_size then fix_batch: the check runs the prepared graph in numpy too, which
        # must see the batch its Resize sizes now say.
        inits = {"k": weights(1, 3, 1, 1), "sizes": np.array([1, 3, 16, 16], np.int64)}
        nodes = [helper.make_node("Relu", ["x"], ["r"]),
                 helper.make_node("Add", ["r", "k"], ["a"]),
                 helper.make_node("Resize", ["a", "", "", "sizes"], ["y"], mode="nearest",
                                  coordinate_transformation_mode="asymmetric",
                                  nearest_mode="floor")]
        model = make_model(nodes, [value("x", [1, 3, 8, 8])], [value("y", [1, 3, 16, 16])],
                           [numpy_helper.from_array(v, n) for n, v in inits.items()])
        out, result = self.prepare(self.save(model), ["fix_input_size:16", "fix_batch:2"])
        self.assertTrue(any("numpy(prepared)" in line for line in self.log), self.log)
        self.assertLess(result["max_abs_diff"], 1e-5)
        x = rng.random((2, 3, 16, 16)).astype(np.float32)
        got = forward(out, x)
        self.assertEqual(got.shape, (2, 3, 32, 32))
        for i in range(2):
            want = (np.maximum(x[i], 0) + inits["k"][0]).repeat(2, axis=1).repeat(2, axis=2)
            self.assertLess(np.abs(got[i] - want).max(), 1e-6, f"item {i}")

    def test_command_line(self):
        model, _ = self.model()
        src = self.save(model)
        out = os.path.join(self.dir, "cli.onnx")
        r = subprocess.run([sys.executable, PREPARE, src, out, "--batch", "2"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("fix_batch: input and outputs at batch 2", r.stdout)
        self.assertIn("check: batch 2", r.stdout)
        self.assertEqual(dims_of(onnx.load(out).graph.input[0])[0], 2)
        r = subprocess.run([sys.executable, PREPARE, src, out, "--batch", "2", "--steps",
                            "fix_batch:2"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--steps cannot be combined", r.stderr)
        self.assertEqual(dims_of(onnx.load(out).graph.input[0])[0], 2)  # left as it was


class Refused(Base):
    """Graphs whose batch cannot be made N safely: refused, naming the node, nothing written."""

    def refused(self, nodes, inits, out_shape, *fragments, inputs=None):
        model = make_model(nodes, inputs or [value("x", [1, 4, 8, 8])],
                           [value("y", out_shape)],
                           [numpy_helper.from_array(v, n) for n, v in inits.items()])
        msg = self.assert_refused(self.save(model), ["fix_batch:2"], "step fix_batch:2",
                                  *fragments)
        return msg

    def test_reshape_folding_the_batch(self):
        self.refused([helper.make_node("Reshape", ["x", "s"], ["y"], name="fold")],
                     {"s": np.array([4, 64], np.int64)}, [4, 64],
                     "Reshape 'fold'", "the batch would not stay dim 0")

    def test_reshape_inferring_a_folded_batch(self):
        # [1,4,8,8] -> [-1,64] gives [4,64] at batch 1 and [4N,64] at batch N: frames folded
        # into dim 0, not copyable.
        self.refused([helper.make_node("Reshape", ["x", "s"], ["y"], name="rows")],
                     {"s": np.array([-1, 64], np.int64)}, [4, 64],
                     "Reshape 'rows'", "[-1, 64]")

    def test_slice_of_the_batch(self):
        self.refused([helper.make_node("Slice", ["x", "b", "e", "a"], ["y"], name="first")],
                     {"b": np.array([0], np.int64), "e": np.array([1], np.int64),
                      "a": np.array([0], np.int64)}, [1, 4, 8, 8],
                     "Slice 'first'", "slices dim 0, the batch (start 0, end 1)")

    def test_expand_to_a_batch(self):
        self.refused([helper.make_node("Expand", ["x", "s"], ["y"], name="grow")],
                     {"s": np.array([2, 4, 8, 8], np.int64)}, [2, 4, 8, 8],
                     "Expand 'grow'", "expands to [2, 4, 8, 8]")

    def test_concat_with_a_batch_1_constant(self):
        self.refused([helper.make_node("Concat", ["x", "c"], ["y"], axis=1, name="join")],
                     {"c": np.zeros((1, 1, 8, 8), np.float32)}, [1, 5, 8, 8],
                     "Concat 'join'", "'c', which has batch 1")

    def test_transpose_moving_the_batch(self):
        self.refused([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2, 3],
                                       name="swap")], {}, [4, 1, 8, 8],
                     "Transpose 'swap'", "moves the batch")

    def test_constant_with_its_own_batch(self):
        self.refused([helper.make_node("Add", ["x", "c"], ["y"], name="plus")],
                     {"c": np.zeros((2, 4, 8, 8), np.float32)}, [2, 4, 8, 8],
                     "Add 'plus'", "would meet the batch")

    def test_unknown_operator(self):
        self.refused([helper.make_node("LpNormalization", ["x"], ["y"], axis=0, name="norm")],
                     {}, [1, 4, 8, 8], "LpNormalization 'norm'", "does not know how to batch")

    def test_two_inputs(self):
        self.refused([helper.make_node("Add", ["x", "state"], ["y"])], {}, [1, 4, 8, 8],
                     "one input", "x, state",
                     inputs=[value("x", [1, 4, 8, 8]), value("state", [1, 4, 8, 8])])

    def test_bad_batch(self):
        model = make_model([helper.make_node("Relu", ["x"], ["y"])], [value("x", [1, 4, 8, 8])],
                           [value("y", [1, 4, 8, 8])], [])
        src = self.save(model)
        for bad in ("0", "x", "65"):
            self.assert_refused(src, [f"fix_batch:{bad}"], f"bad batch '{bad}'")
        r = subprocess.run([sys.executable, PREPARE, src, os.path.join(self.dir, "o.onnx"),
                            "--batch", "0"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad batch '0'", r.stderr)


class TheCheck(unittest.TestCase):
    """check_batch refuses a net whose batched items are not their batch-1 results."""

    class MixingNet:
        """Answers a batch with every item replaced by the batch's mean (frames mixed)."""

        def setInput(self, blob):
            self.blob = blob

        def forward(self):
            return np.broadcast_to(self.blob.mean(axis=0, keepdims=True), self.blob.shape).copy()

    def test_mixed_frames_are_refused(self):
        img = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
        with self.assertRaises(PrepareError) as cm:
            check_batch(cv2, self.MixingNet(), None, img, (16, 16), None, 3, lambda _: None)
        self.assertIn("differs from its batch-1 forward", str(cm.exception))

    def test_a_per_item_net_passes(self):
        class Net(self.MixingNet):
            def forward(self):
                return np.tanh(self.blob)
        img = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
        got = check_batch(cv2, Net(), None, img, (16, 16), None, 3, lambda _: None)
        self.assertEqual(got["batch"], 3)
        self.assertEqual(got["batch_max_abs_diff"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
