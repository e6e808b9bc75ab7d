#!/usr/bin/python3
"""Writes the unetseg test models: small deterministic ONNX graphs with known answers.

Usage: /usr/bin/python3 tests/models/make_test_models.py OUTDIR

Writes into OUTDIR, for each NAME in unet_rg, logit_rg, twoclass_rg, classes3, u2net_rsu,
slow_rg, recurrent_rg, nonfinite_rg, batch_rg and anybatch_rg, NAME.onnx and its sidecar NAME.json (docs/MODEL_SPEC.md). Built with onnx.helper only (no torch),
opset 11, IR version 6, fp32, batch 1 (batch_rg: 4, anybatch_rg: symbolic), static shapes, weights from a fixed numpy seed: every run
writes byte-identical files. Every graph loads and runs in OpenCV 4.6's cv::dnn::readNetFromONNX.

The oracle (see tests/models/README.md). The first four models read RGB input scaled by 1/255
(mean 0, std 1), so R, G, B below are the colour values in [0, 1]; K = 20.

  unet_rg      probability        sigmoid(K * (R - G)), 1x1x64x64. A one-level U-Net: exact at
                                  every pixel whose aligned 2x2 block (in the 64x64 model input) has
                                  one colour, so on any image made of flat aligned 2x2 blocks.
  logit_rg     logit              K * (R - G), 1x1x64x64, exact at every pixel of any image.
  twoclass_rg  two_class_logits   [K*(G-R)/2, K*(R-G)/2] (background, foreground), 1x2x64x64;
                                  softmax foreground = sigmoid(K * (R - G)). Its sidecar says BGR
                                  and its weights read channel 2 as R, so the oracle holds on RGB
                                  frames only when the colour order is honoured.
  classes3     class_logits       [K*0.25, K*(R-G), K*(G-R)] for (background, red, green),
                                  1x3x64x64, exact at every pixel. Argmax: red where R - G > 0.25,
                                  green where G - R > 0.25, background otherwise; so pure red ->
                                  red, pure green -> green, and black, white, grey, blue, yellow
                                  and every dark or washed-out colour -> background.
  u2net_rsu    probability        a U2-Net-like graph with random (seeded) weights: no analytic
                                  answer; proves the topology (RSU blocks, ceil-mode pooling,
                                  dilated convs, bilinear resize to the skip's size, side outputs,
                                  fuse) imports and runs, and that output 0 (d0) is the one read.
  slow_rg      logit              logit_rg's answer, slowly (hundreds of ms): for the live mode.
  recurrent_rg probability        0.5 * sigmoid(K * (R - G)) + 0.05 * n, n the frames it saw
                                  since its state (input `state`, output `state_out`) was zero.
  batch_rg     logit              logit_rg at batch 4: several frames per forward (streams sharing
                                  one model); its items must be what logit_rg gives each frame.
  anybatch_rg  logit              logit_rg with a symbolic batch that only 1 fits: a Reshape to
                                  1x1x(-1)x64 before the output stacks a batch's items into one
                                  (a model that claims any batch but cannot run one: the worker
                                  must fall back to one by one).
  nonfinite_rg probability        broken on purpose: NaN on green, +Inf on blue, 2 on red (outputs
                                  `one`, 1 channel, and `two` = [-one, one] for the other kinds).
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 11
IR_VERSION = 6  # the IR version that goes with opset 11; fixed so the bytes do not depend on onnx
K = 20.0
SIZE = 64
SEED = 20240611


class Graph:
    """A tiny builder: every node's output is named after the node, as exporters do."""

    def __init__(self, name, rng):
        self.name = name
        self.rng = rng
        self.nodes = []
        self.inits = []
        self.count = {}

    def uid(self, prefix):
        n = self.count.get(prefix, 0)
        self.count[prefix] = n + 1
        return '%s_%d' % (prefix, n)

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, prefix, output=None, **attrs):
        name = self.uid(prefix)
        out = output or name
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def conv(self, x, w, b, dilation=1, output=None, prefix='conv'):
        w = np.asarray(w, dtype=np.float32)
        b = np.asarray(b, dtype=np.float32)
        k = w.shape[2]
        pad = dilation * (k // 2)  # 'same' padding for odd kernels
        name = self.uid(prefix)
        wn = self.const(name + '.weight', w)
        bn = self.const(name + '.bias', b)
        self.nodes.append(helper.make_node(
            'Conv', [x, wn, bn], [output or name], name=name,
            kernel_shape=[k, k], pads=[pad, pad, pad, pad], strides=[1, 1],
            dilations=[dilation, dilation], group=1))
        return output or name

    def batchnorm(self, x, channels):
        name = self.uid('bn')
        gamma = self.const(name + '.weight',
                           self.rng.uniform(0.5, 1.5, channels).astype(np.float32))
        beta = self.const(name + '.bias', self.rng.uniform(-0.2, 0.2, channels).astype(np.float32))
        mean = self.const(name + '.running_mean',
                          self.rng.uniform(-0.2, 0.2, channels).astype(np.float32))
        var = self.const(name + '.running_var',
                         self.rng.uniform(0.5, 1.5, channels).astype(np.float32))
        self.nodes.append(helper.make_node('BatchNormalization', [x, gamma, beta, mean, var],
                                           [name], name=name, epsilon=1e-5, momentum=0.9))
        return name

    def relu(self, x, output=None):
        return self.node('Relu', [x], 'relu', output)

    def sigmoid(self, x, output=None):
        return self.node('Sigmoid', [x], 'sigmoid', output)

    def concat(self, xs):
        return self.node('Concat', xs, 'concat', axis=1)

    def add(self, a, b):
        return self.node('Add', [a, b], 'add')

    def maxpool2(self, x, ceil=False):
        attrs = dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0])
        if ceil:
            attrs['ceil_mode'] = 1
        return self.node('MaxPool', [x], 'maxpool', **attrs)

    def upsample2_nearest(self, x):
        # What torch.onnx writes for nn.Upsample(scale_factor=2, mode='nearest') at opset 11.
        name = self.uid('resize')
        roi = self.const(name + '.roi', np.zeros((0,), np.float32))
        scales = self.const(name + '.scales', np.array([1, 1, 2, 2], np.float32))
        self.nodes.append(helper.make_node(
            'Resize', [x, roi, scales], [name], name=name, mode='nearest',
            coordinate_transformation_mode='asymmetric', nearest_mode='floor'))
        return name

    def resize_bilinear_to(self, x, channels, height, width):
        # U2-Net's _upsample_like: F.interpolate(size=target, mode='bilinear'),
        # align_corners=False, written by torch.onnx at opset 11 with constant sizes.
        name = self.uid('resize')
        roi = self.const(name + '.roi', np.zeros((0,), np.float32))
        scales = self.const(name + '.scales', np.zeros((0,), np.float32))
        sizes = self.const(name + '.sizes', np.array([1, channels, height, width], np.int64))
        self.nodes.append(helper.make_node(
            'Resize', [x, roi, scales, sizes], [name], name=name, mode='linear',
            coordinate_transformation_mode='pytorch_half_pixel', nearest_mode='floor',
            cubic_coeff_a=-0.75))
        return name

    def model(self, inputs, outputs, doc):
        graph = helper.make_graph(self.nodes, self.name, inputs, outputs, initializer=self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
                              producer_name='unetseg-make_test_models', producer_version='1')
        m.ir_version = IR_VERSION
        m.doc_string = doc
        onnx.checker.check_model(m)
        return m


def tensor(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def centre_only(weights_1x1):
    """A 3x3 kernel whose only non-zero tap is the centre: a 1x1 conv in 'same' 3x3 clothing."""
    w1 = np.asarray(weights_1x1, np.float32)
    w = np.zeros(w1.shape + (3, 3), np.float32)
    w[:, :, 1, 1] = w1
    return w


def random_kernel(rng, cout, cin, k=3, scale=None):
    scale = scale if scale is not None else 1.0 / np.sqrt(cin * k * k)
    return (rng.standard_normal((cout, cin, k, k)) * scale).astype(np.float32)


def rg_pair_rows(cin, r, g):
    """Two 1x1 rows over cin channels: +(R-G) and -(R-G), for Relu(R-G) and Relu(G-R)."""
    rows = np.zeros((2, cin), np.float32)
    rows[0, r], rows[0, g] = 1.0, -1.0
    rows[1, r], rows[1, g] = -1.0, 1.0
    return rows


def rg_hidden(g, x, r_index, g_index, extra, prefix):
    """Conv 3x3 (centre tap) + Relu to [relu(R-G), relu(G-R), extra random channels]."""
    w = random_kernel(g.rng, 2 + extra, 3)
    w[:2] = centre_only(rg_pair_rows(3, r_index, g_index))
    b = g.rng.uniform(-0.1, 0.1, 2 + extra).astype(np.float32)
    b[:2] = 0.0
    return g.relu(g.conv(x, w, b, prefix=prefix))


# ------------------------------------------------------------------------------------------
# unet_rg: encoder conv -> maxpool -> bottleneck conv -> nearest x2 -> concat skip -> decoder
# conv -> 1x1 conv -> sigmoid. Channels 0/1 of every stage carry relu(R-G) and relu(G-R)
# through centre-only kernels (pointwise), the other channels are random and get weight 0 in
# every oracle channel downstream. On a map constant over aligned 2x2 blocks, maxpool followed
# by nearest x2 gives the map back, so the skip path and the down/up path each carry K/2*(R-G).
def make_unet_rg(rng):
    g = Graph('unet_rg', rng)
    c1, c2, c3 = 8, 16, 8
    enc = rg_hidden(g, 'input', 0, 1, c1 - 2, 'enc1')                    # 8 x 64 x 64
    pooled = g.maxpool2(enc)                                              # 8 x 32 x 32

    w = random_kernel(rng, c2, c1)
    w[:2] = centre_only(np.hstack([rg_pair_rows(2, 0, 1), np.zeros((2, c1 - 2))]))
    b = rng.uniform(-0.1, 0.1, c2).astype(np.float32)
    b[:2] = 0.0
    bott = g.relu(g.conv(pooled, w, b, prefix='bottleneck'))             # 16 x 32 x 32
    up = g.upsample2_nearest(bott)                                        # 16 x 64 x 64
    cat = g.concat([enc, up])                                             # 24 x 64 x 64

    # decoder: 0/1 from the skip (cat 0/1), 2/3 from the down/up path (cat c1+0 / c1+1)
    w = random_kernel(rng, c3, c1 + c2)
    rows = np.zeros((4, c1 + c2), np.float32)
    rows[0, 0], rows[0, 1] = 1, -1
    rows[1, 0], rows[1, 1] = -1, 1
    rows[2, c1], rows[2, c1 + 1] = 1, -1
    rows[3, c1], rows[3, c1 + 1] = -1, 1
    w[:4] = centre_only(rows)
    b = rng.uniform(-0.1, 0.1, c3).astype(np.float32)
    b[:4] = 0.0
    dec = g.relu(g.conv(cat, w, b, prefix='dec1'))                        # 8 x 64 x 64

    wf = np.zeros((1, c3, 1, 1), np.float32)
    wf[0, :4, 0, 0] = [K / 2, -K / 2, K / 2, -K / 2]
    head = g.conv(dec, wf, np.zeros(1, np.float32), prefix='head')        # K*(R-G)
    g.sigmoid(head, output='output')
    return g.model([tensor('input', (1, 3, SIZE, SIZE))], [tensor('output', (1, 1, SIZE, SIZE))],
                   'unet_rg: sigmoid(20*(R-G)) on images flat over aligned 2x2 blocks')


def make_logit_rg(rng, batch=1, name='logit_rg'):
    g = Graph(name, rng)
    hidden = rg_hidden(g, 'input', 0, 1, 2, 'conv1')                      # 4 x 64 x 64
    w = np.zeros((1, 4, 1, 1), np.float32)
    w[0, :2, 0, 0] = [K, -K]
    g.conv(hidden, w, np.zeros(1, np.float32), output='output', prefix='head')
    return g.model([tensor('input', (batch, 3, SIZE, SIZE))],
                   [tensor('output', (batch, 1, SIZE, SIZE))], '%s: 20*(R-G)' % name)


def make_batch_rg(rng):
    return make_logit_rg(rng, batch=4, name='batch_rg')


def make_anybatch_rg(rng):
    g = Graph('anybatch_rg', rng)
    hidden = rg_hidden(g, 'input', 0, 1, 2, 'conv1')                      # 4 x 64 x 64
    w = np.zeros((1, 4, 1, 1), np.float32)
    w[0, :2, 0, 0] = [K, -K]
    logit = g.conv(hidden, w, np.zeros(1, np.float32), prefix='head')
    shape = g.const('shape', np.array([1, 1, -1, SIZE], np.int64))
    g.node('Reshape', [logit, shape], 'batch_one', output='output')
    return g.model([tensor('input', ('N', 3, SIZE, SIZE))],
                   [tensor('output', ('N', 1, SIZE, SIZE))], 'anybatch_rg: 20*(R-G), batch 1 only')


# slow_rg: logit_rg's answer, plus a deliberately heavy branch (10 convolutions of 32 channels
# at 256x256, about 12 GFLOP: hundreds of ms on 2 cores) multiplied by zero: the "fake slow
# model" of the live mode's tests, whose masks can still be checked against their frames.
SLOW_LAYERS, SLOW_CHANNELS = 10, 32


def make_slow_rg(rng):
    g = Graph('slow_rg', rng)
    hidden = rg_hidden(g, 'input', 0, 1, 2, 'conv1')                      # 4 x 64 x 64
    w = np.zeros((1, 4, 1, 1), np.float32)
    w[0, :2, 0, 0] = [K, -K]
    logit = g.conv(hidden, w, np.zeros(1, np.float32), prefix='head')    # K*(R-G)
    x = g.upsample2_nearest(g.upsample2_nearest('input'))                 # 3 x 256 x 256
    x = g.relu(g.conv(x, random_kernel(rng, SLOW_CHANNELS, 3),
                      np.zeros(SLOW_CHANNELS, np.float32), prefix='heavy'))
    for _ in range(SLOW_LAYERS - 1):
        x = g.relu(g.conv(x, random_kernel(rng, SLOW_CHANNELS, SLOW_CHANNELS),
                          np.zeros(SLOW_CHANNELS, np.float32), prefix='heavy'))
    x = g.maxpool2(g.maxpool2(x))                                         # 32 x 64 x 64
    w = np.zeros((1, SLOW_CHANNELS, 1, 1), np.float32)                   # the branch x 0
    nothing = g.conv(x, w, np.zeros(1, np.float32), prefix='discard')
    g.node('Add', [logit, nothing], 'add', output='output')
    return g.model([tensor('input', (1, 3, SIZE, SIZE))], [tensor('output', (1, 1, SIZE, SIZE))],
                   'slow_rg: 20*(R-G), slowly')


# recurrent_rg: a recurrent model with a known answer. Its state input `state` (1x1x64x64,
# zeros on the first frame) counts the frames it has seen: `state_out` = state + 1, fed back as
# the next frame's `state`; the mask shows the count: 0.5 * sigmoid(K * (R - G)) + 0.05 * state,
# so after n frames since a reset, red is 0.5 + 0.05 n and green 0.05 n (to float precision).
def make_recurrent_rg(rng):
    g = Graph('recurrent_rg', rng)
    hidden = rg_hidden(g, 'input', 0, 1, 2, 'conv1')                      # 4 x 64 x 64
    w = np.zeros((1, 4, 1, 1), np.float32)
    w[0, :2, 0, 0] = [K, -K]
    half = g.node('Mul', [g.sigmoid(g.conv(hidden, w, np.zeros(1, np.float32), prefix='head')),
                          g.const('half', np.array(0.5, np.float32))], 'mul')
    count = g.node('Mul', ['state', g.const('step', np.array(0.05, np.float32))], 'mul')
    g.node('Add', [half, count], 'add', output='output')
    g.node('Add', ['state', g.const('one', np.array(1.0, np.float32))], 'add', output='state_out')
    return g.model([tensor('input', (1, 3, SIZE, SIZE)), tensor('state', (1, 1, SIZE, SIZE))],
                   [tensor('output', (1, 1, SIZE, SIZE)), tensor('state_out', (1, 1, SIZE, SIZE))],
                   'recurrent_rg: 0.5*sigmoid(20*(R-G)) + 0.05*frames since reset')


# nonfinite_rg: a broken model, on purpose. With d = R - G: `one` = sqrt(d) + exp(100 B), and
# `two` = [-one, one]. Red gives 2 (foreground in every kind), green sqrt(-1) = NaN, blue
# exp(100) = +Inf (-Inf in two's first channel), black 1: NaN and Inf must come out as
# background whatever the output kind.
def make_nonfinite_rg(rng):
    g = Graph('nonfinite_rg', rng)
    w = np.zeros((1, 3, 1, 1), np.float32)
    w[0, :2, 0, 0] = [1.0, -1.0]
    name = g.uid('conv')
    g.nodes.append(helper.make_node('Conv', ['input', g.const(name + '.weight', w)], [name],
                                    name=name, kernel_shape=[1, 1]))
    root = g.node('Sqrt', [name], 'sqrt')
    wb = np.zeros((1, 3, 1, 1), np.float32)
    wb[0, 2, 0, 0] = 100.0
    blue = g.uid('conv')
    g.nodes.append(helper.make_node('Conv', ['input', g.const(blue + '.weight', wb)], [blue],
                                    name=blue, kernel_shape=[1, 1]))
    one = g.node('Add', [root, g.node('Exp', [blue], 'exp')], 'add', output='one')
    neg = g.node('Mul', [one, g.const('minus', np.array(-1.0, np.float32))], 'mul')
    g.node('Concat', [neg, one], 'concat', output='two', axis=1)
    return g.model([tensor('input', (1, 3, SIZE, SIZE))],
                   [tensor('one', (1, 1, SIZE, SIZE)), tensor('two', (1, 2, SIZE, SIZE))],
                   'nonfinite_rg: NaN on green, +Inf on blue')


def make_twoclass_rg(rng):
    g = Graph('twoclass_rg', rng)
    hidden = rg_hidden(g, 'input', 2, 1, 2, 'conv1')  # BGR input: channel 2 is R, 1 is G
    w = np.zeros((2, 4, 1, 1), np.float32)
    w[0, :2, 0, 0] = [-K / 2, K / 2]   # background: K*(G-R)/2
    w[1, :2, 0, 0] = [K / 2, -K / 2]   # foreground: K*(R-G)/2
    g.conv(hidden, w, np.zeros(2, np.float32), output='output', prefix='head')
    return g.model([tensor('input', (1, 3, SIZE, SIZE))], [tensor('output', (1, 2, SIZE, SIZE))],
                   'twoclass_rg (BGR input): [10*(G-R), 10*(R-G)]')


def make_classes3(rng):
    g = Graph('classes3', rng)
    hidden = rg_hidden(g, 'input', 0, 1, 2, 'conv1')                      # relu(R-G), relu(G-R)
    w = np.zeros((3, 4, 1, 1), np.float32)
    w[1, :2, 0, 0] = [K, -K]    # red:   K*(R-G)
    w[2, :2, 0, 0] = [-K, K]    # green: K*(G-R)
    b = np.array([K * 0.25, 0, 0], np.float32)  # background: K*0.25
    g.conv(hidden, w, b, output='output', prefix='head')
    return g.model([tensor('input', (1, 3, SIZE, SIZE))], [tensor('output', (1, 3, SIZE, SIZE))],
                   'classes3: [5, 20*(R-G), 20*(G-R)] (background, red, green)')


# ------------------------------------------------------------------------------------------
# u2net_rsu: the official U2-Net structure, shrunk to two stages.
def rebnconv(g, x, cin, cout, dilation=1):
    """REBNCONV: conv 3x3 (padding = dilation) + BatchNorm + Relu."""
    w = random_kernel(g.rng, cout, cin, scale=np.sqrt(2.0 / (cin * 9)))
    b = g.rng.uniform(-0.1, 0.1, cout).astype(np.float32)
    return g.relu(g.batchnorm(g.conv(x, w, b, dilation=dilation, prefix='rebnconv'), cout))


def rsu4(g, x, cin, mid, cout, h, w):
    """RSU4 as in the official code: 3 encoder levels, two ceil-mode pools, a dilated bottom,
    bilinear upsampling of the deeper map to its skip's size, and a residual add."""
    hxin = rebnconv(g, x, cin, cout)
    hx1 = rebnconv(g, hxin, cout, mid)
    hx2 = rebnconv(g, g.maxpool2(hx1, ceil=True), mid, mid)
    h2, w2 = -(-h // 2), -(-w // 2)
    hx3 = rebnconv(g, g.maxpool2(hx2, ceil=True), mid, mid)
    h3, w3 = -(-h2 // 2), -(-w2 // 2)
    hx4 = rebnconv(g, hx3, mid, mid, dilation=2)
    hx3d = rebnconv(g, g.concat([hx4, hx3]), 2 * mid, mid)
    assert (h3, w3) != (h2, w2)
    hx2d = rebnconv(g, g.concat([g.resize_bilinear_to(hx3d, mid, h2, w2), hx2]), 2 * mid, mid)
    hx1d = rebnconv(g, g.concat([g.resize_bilinear_to(hx2d, mid, h, w), hx1]), 2 * mid, cout)
    return g.add(hx1d, hxin)


def rsu4f(g, x, cin, mid, cout):
    """RSU4F: no pooling, dilations 1, 2, 4, 8 instead, and a residual add."""
    hxin = rebnconv(g, x, cin, cout)
    hx1 = rebnconv(g, hxin, cout, mid, 1)
    hx2 = rebnconv(g, hx1, mid, mid, 2)
    hx3 = rebnconv(g, hx2, mid, mid, 4)
    hx4 = rebnconv(g, hx3, mid, mid, 8)
    hx3d = rebnconv(g, g.concat([hx4, hx3]), 2 * mid, mid, 4)
    hx2d = rebnconv(g, g.concat([hx3d, hx2]), 2 * mid, mid, 2)
    hx1d = rebnconv(g, g.concat([hx2d, hx1]), 2 * mid, cout, 1)
    return g.add(hx1d, hxin)


def side_kernel(rng, cin, scale=0.05):
    w = random_kernel(rng, 1, cin, scale=scale)
    return w - w.mean()


def make_u2net_rsu(rng):
    g = Graph('u2net_rsu', rng)
    mid, ch = 8, 16
    half = SIZE // 2
    hx1 = rsu4(g, 'input', 3, mid, ch, SIZE, SIZE)                        # stage1, 16 x 64 x 64
    hx2 = rsu4f(g, g.maxpool2(hx1, ceil=True), ch, mid, ch)                # stage2 (bottom), 32^2
    hx2up = g.resize_bilinear_to(hx2, ch, SIZE, SIZE)
    hx1d = rsu4(g, g.concat([hx2up, hx1]), 2 * ch, mid, ch, SIZE, SIZE)   # stage1d, 16 x 64 x 64

    # side outputs (conv 3x3 to 1 channel), d2 upsampled to d1's size, fused by a 1x1 conv.
    # Zero-sum side kernels keep the logits near 0 (the features are Relu outputs, all >= 0),
    # so the sigmoids do not saturate and d0, d1, d2 differ visibly.
    d1 = g.conv(hx1d, side_kernel(rng, ch), rng.uniform(-0.1, 0.1, 1), prefix='side1')
    side2 = g.conv(hx2, side_kernel(rng, ch), rng.uniform(-0.1, 0.1, 1), prefix='side2')
    d2 = g.resize_bilinear_to(side2, 1, SIZE, SIZE)
    # The sides' sigmoids come before the fuse in node order; the graph's outputs are listed in
    # the official order d0, d1, d2 (OpenCV 4.6 lists its unconnected outputs in that order too).
    g.sigmoid(d1, output='d1')
    g.sigmoid(d2, output='d2')
    d0 = g.conv(g.concat([d1, d2]), np.array([[[[0.6]], [[0.4]]]], np.float32),
                np.zeros(1, np.float32), prefix='outconv')
    g.sigmoid(d0, output='d0')
    out = [tensor(n, (1, 1, SIZE, SIZE)) for n in ('d0', 'd1', 'd2')]
    return g.model([tensor('input', (1, 3, SIZE, SIZE))], out,
                   'u2net_rsu: a two-stage U2-Net (RSU4, RSU4F, RSU4 decoder), random weights')


def sidecar(name, color_order, kind, labels=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
            normalize_by_max=False, minmax=False, state=None, output=None):
    output = {'name': output, 'kind': kind} if output else {'index': 0, 'kind': kind,
                                                             'minmax': minmax}
    if labels:
        output['labels'] = labels
    extra = {}
    if state:  # a recurrent model names its frame input, mask output and state pairs
        output = {'name': 'output', 'kind': kind}
        extra = {'state': [{'input': i, 'output': o} for i, o in state]}
    return {
        'name': name,
        'input': {
            'width': SIZE,
            'height': SIZE,
            'color_order': color_order,
            'scale': 1.0 / 255.0,
            'mean': list(mean),
            'std': list(std),
            'normalize_by_max': normalize_by_max,
        },
        'output': output,
        **extra,
    }


MODELS = [
    ('unet_rg', make_unet_rg, dict(color_order='RGB', kind='probability')),
    ('logit_rg', make_logit_rg, dict(color_order='RGB', kind='logit')),
    ('twoclass_rg', make_twoclass_rg,
     dict(color_order='BGR', kind='two_class_logits', labels=['background', 'foreground'])),
    ('classes3', make_classes3,
     dict(color_order='RGB', kind='class_logits', labels=['background', 'red', 'green'])),
    ('u2net_rsu', make_u2net_rsu,
     dict(color_order='RGB', kind='probability', mean=(0.485, 0.456, 0.406),
          std=(0.229, 0.224, 0.225), normalize_by_max=True, minmax=True)),
    # appended, so that the seeds (SEED + index) of the models above stay as they were
    ('slow_rg', make_slow_rg, dict(color_order='RGB', kind='logit')),
    ('recurrent_rg', make_recurrent_rg,
     dict(color_order='RGB', kind='probability', state=[('state', 'state_out')])),
    ('nonfinite_rg', make_nonfinite_rg, dict(color_order='RGB', kind='probability', output='one')),
    ('batch_rg', make_batch_rg, dict(color_order='RGB', kind='logit')),
    ('anybatch_rg', make_anybatch_rg, dict(color_order='RGB', kind='logit')),
]


def to_json(value, indent=0):
    """Like json.dumps(indent=2), but lists of numbers or strings stay on one line."""
    if isinstance(value, dict):
        pad = ' ' * (indent + 2)
        items = ['%s%s: %s' % (pad, json.dumps(k), to_json(v, indent + 2)) for k, v in value.items()]
        return '{\n' + ',\n'.join(items) + '\n' + ' ' * indent + '}'
    return json.dumps(value)


def write_bytes(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write('usage: %s OUTDIR\n' % argv[0])
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    for index, (name, make, side) in enumerate(MODELS):
        rng = np.random.RandomState(SEED + index)  # one stream per model: independent of order
        model = make(rng)
        write_bytes(os.path.join(outdir, name + '.onnx'), model.SerializeToString())
        text = to_json(sidecar(name, **side)) + '\n'
        write_bytes(os.path.join(outdir, name + '.json'), text.encode('utf-8'))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
