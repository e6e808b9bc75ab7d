"""Simplifications of the ONNX that tfjs_ops.py builds, each exact up to float rounding: what
TensorFlow kept as separate nodes and OpenCV would run as separate layers.

  Pad -> Conv            a zero Pad (Keras ZeroPadding2D before a VALID convolution) becomes
                         the convolution's pads
  Conv -> Mul/Add        per-channel constants after a convolution (batch norm that TF.js did
                         not fuse, a bias kept as an Add) go into its weights and bias
  Clip -> Clip           clip_by_value's Minimum/Maximum pair becomes one Clip
  Split -> Slice         a Split into unequal parts, or with outputs nobody reads, becomes one
                         Slice per output read (OpenCV 4.6 ignores Split's 'split' input and
                         cuts equal parts: RVM's [fgr, pha] split gave a wrong pha)
  Identity               bypassed
  dead code              nodes and weights no output needs are dropped (graph.remove_unused)
  small constants        identical small initializers (Clip bounds, ...) are shared
"""

import numpy as np
from onnx import helper, numpy_helper

from .graph import attr, remove_unused, set_attr


class Graph:
    """The graph with lookups that the passes keep up to date."""

    def __init__(self, graph):
        self.g = graph
        self.consts = {t.name: t for t in graph.initializer}
        self.outputs = {o.name for o in graph.output}

    def consumers(self, name):
        return [n for n in self.g.node if name in n.input]

    def only_consumer(self, name):
        users = self.consumers(name)
        if len(users) != 1 or name in self.outputs:
            return None
        return users[0]

    def value(self, name):
        t = self.consts.get(name)
        return None if t is None else numpy_helper.to_array(t)

    def set_value(self, name, value):
        t = numpy_helper.from_array(np.asarray(value), name)
        self.consts[name].CopyFrom(t)

    def new_const(self, name, value):
        t = numpy_helper.from_array(np.asarray(value), name)
        self.g.initializer.append(t)
        self.consts[name] = self.g.initializer[-1]
        return name

    def remove(self, node):
        self.g.node.remove(node)


def fold_pads(g):
    done = 0
    for pad in [n for n in g.g.node if n.op_type == "Pad"]:
        pads = g.value(pad.input[1]) if len(pad.input) > 1 else None
        value = g.value(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else 0.0
        mode = attr(pad, "mode", b"constant")
        if pads is None or value is None or float(value) != 0.0 or \
                mode not in (b"constant", "constant") or len(pads) != 8 or \
                pads[[0, 1, 4, 5]].any() or pad.output[0] in g.outputs:
            continue
        users = g.consumers(pad.output[0])
        if not users or any(u.op_type != "Conv" or u.input[0] != pad.output[0] for u in users):
            continue
        for conv in users:
            old = list(attr(conv, "pads", [0, 0, 0, 0]))
            set_attr(conv, "pads", [int(a + b) for a, b in zip(old, pads[[2, 3, 6, 7]])])
            conv.input[0] = pad.input[0]
        g.remove(pad)
        done += 1
    return done


def fold_channel_constants(g):
    """Conv -> Mul(c) / Add(c), c a constant per output channel (or a scalar)."""
    done = 0
    changed = True
    while changed:
        changed = False
        for conv in [n for n in g.g.node if n.op_type in ("Conv", "ConvTranspose")]:
            user = g.only_consumer(conv.output[0])
            if user is None or user.op_type not in ("Mul", "Add"):
                continue
            other = [i for i in user.input if i != conv.output[0]]
            c = g.value(other[0]) if len(other) == 1 else None
            w = g.value(conv.input[1])
            if c is None or w is None:
                continue
            transpose = conv.op_type == "ConvTranspose"
            group = attr(conv, "group", 1)
            if transpose and group != 1:
                continue
            cout = w.shape[1] if transpose else w.shape[0]
            if c.size not in (1, cout) or (c.size == cout and c.ndim >= 1 and (
                    c.ndim != 4 or c.shape[1] != cout)):
                continue
            per = np.broadcast_to(c.reshape(-1), (cout,)).astype(np.float32)
            b = g.value(conv.input[2]) if len(conv.input) > 2 else np.zeros(cout, np.float32)
            if user.op_type == "Mul":
                scale = per.reshape((1, -1, 1, 1) if transpose else (-1, 1, 1, 1))
                weights_name = conv.input[1] + "/scaled"
                g.new_const(weights_name, (w * scale).astype(np.float32))
                conv.input[1] = weights_name
                b = b * per
            else:
                b = b + per
            bias_name = g.new_const(conv.output[0] + "/bias_folded", b.astype(np.float32))
            if len(conv.input) > 2:
                conv.input[2] = bias_name
            else:
                conv.input.append(bias_name)
            conv.output[0] = user.output[0]
            g.remove(user)
            done += 1
            changed = True
            break
    return done


def bound(g, name, default):
    if not name:
        return default
    v = g.value(name)
    return None if v is None or v.size != 1 else float(v.ravel()[0])


def merge_clips(g):
    done = 0
    for outer in [n for n in g.g.node if n.op_type == "Clip"]:
        inner = next((n for n in g.g.node if n.op_type == "Clip" and outer.input[0] in n.output),
                     None)
        if inner is None or g.only_consumer(inner.output[0]) is not outer:
            continue
        ins = [list(n.input) + [""] * (3 - len(n.input)) for n in (inner, outer)]
        los = [bound(g, i[1], -np.inf) for i in ins]
        his = [bound(g, i[2], np.inf) for i in ins]
        if None in los + his:
            continue
        lo, hi = max(los), min(his)
        if lo > hi:
            continue
        names = ["" if np.isinf(v) else g.new_const(f"{outer.output[0]}/{w}", np.float32(v))
                 for v, w in ((lo, "min"), (hi, "max"))]
        del outer.input[:]
        outer.input.extend([inner.input[0]] + names)
        g.remove(inner)
        done += 1
    return done


def splits_to_slices(g):
    done = 0
    for split in [n for n in g.g.node if n.op_type == "Split"]:
        sizes = g.value(split.input[1]) if len(split.input) > 1 and split.input[1] else None
        if sizes is None:
            continue
        used = [bool(g.consumers(o)) or o in g.outputs for o in split.output]
        if len(set(sizes.tolist())) == 1 and all(used):
            continue
        axis = attr(split, "axis", 0)
        at = list(g.g.node).index(split)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        for k, (out, size, start) in enumerate(zip(split.output, sizes, starts)):
            if not used[k]:
                continue
            args = [g.new_const(f"{out}/{w}", np.array([v], np.int64))
                    for v, w in ((start, "starts"), (start + size, "ends"), (axis, "axes"))]
            g.g.node.insert(at, helper.make_node("Slice", [split.input[0]] + args, [out],
                                                 name=out))
            at += 1
        g.remove(split)
        done += 1
    return done


def bypass_identities(g):
    done = 0
    inputs = {i.name for i in g.g.input}
    for node in [n for n in g.g.node if n.op_type == "Identity"]:
        x, y = node.input[0], node.output[0]
        if y in g.outputs:
            if x in g.outputs or x in inputs or x in g.consts:
                continue
            for n in g.g.node:
                n.input[:] = [y if i == x else i for i in n.input]
                n.output[:] = [y if o == x else o for o in n.output]
        else:
            for n in g.g.node:
                n.input[:] = [x if i == y else i for i in n.input]
        g.remove(node)
        done += 1
    return done


def share_small_constants(g):
    seen, renames = {}, {}
    for t in g.g.initializer:
        v = numpy_helper.to_array(t)
        if v.size > 16:
            continue
        key = (v.dtype.str, v.shape, v.tobytes())
        if key in seen:
            renames[t.name] = seen[key]
        else:
            seen[key] = t.name
    for n in g.g.node:
        n.input[:] = [renames.get(i, i) for i in n.input]
    return len(renames)


def simplify(model):
    """Runs the passes; returns a line saying what each did."""
    g = Graph(model.graph)
    notes = [f"{fold_pads(g)} Pad folded into Conv",
             f"{fold_channel_constants(g)} Mul/Add folded into Conv",
             f"{merge_clips(g)} Clip pairs merged",
             f"{splits_to_slices(g)} Split made Slice",
             f"{bypass_identities(g)} Identity bypassed",
             f"{share_small_constants(g)} constants shared"]
    remove_unused(model.graph)
    return ", ".join(notes)
