"""U2-Net and U2-Netp (Qin et al., "U2-Net: Going Deeper with Nested U-Structure for Salient
Object Detection", Pattern Recognition 2020), as published in github.com/xuebinqin/U-2-Net
(model/u2net.py).

The module tree and attribute names are the official ones, so the state_dict keys are exactly
those of the official checkpoints (u2net.pth, 44.0 M parameters; u2netp.pth, 1.13 M) and
`model.load_state_dict(torch.load("u2net.pth", map_location="cpu"))` loads them unchanged:

    stage1.rebnconvin.conv_s1.weight, stage1.rebnconvin.bn_s1.running_mean, ...,
    stage5d.rebnconv1d.bn_s1.num_batches_tracked, side1.weight, ..., outconv.bias

Pooling layers and ReLUs have no parameters and so no keys; they keep the official names anyway.
Upsampling is the official `_upsample_like` (bilinear, align_corners=False: what F.upsample did
when the checkpoints were trained). forward() returns the official 7 sigmoid maps (d0 fused,
d1..d6 side outputs); `forward_d0` only the fused one (what models/export.py exports).

Runs with Debian's /usr/bin/python3 and python3-torch.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["REBNCONV", "RSU7", "RSU6", "RSU5", "RSU4", "RSU4F", "U2NET", "U2NETP", "U2NET_full",
           "U2NET_lite"]


def _size_of(t):
    """Spatial size of t. While exporting (tracing) with a static input size it is returned as
    Python ints, so that the ONNX Resize gets constant target sizes instead of a Shape/Gather/
    Concat chain (OpenCV 4.6 imports both; constants make the graph simpler and static)."""
    if torch.jit.is_tracing():
        return [int(s) for s in t.shape[2:]]
    return t.shape[2:]


def _upsample_like(src, tar):
    return F.interpolate(src, size=_size_of(tar), mode="bilinear", align_corners=False)


class REBNCONV(nn.Module):
    """3x3 conv (dilated) + BatchNorm + ReLU; attribute names as in the official code."""

    def __init__(self, in_ch=3, out_ch=3, dirate=1):
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=1 * dirate, dilation=1 * dirate)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


def _pool():
    return nn.MaxPool2d(2, stride=2, ceil_mode=True)


class _RSU(nn.Module):
    """RSU-L (L = 7, 6, 5, 4): a U-Net of height L inside a residual block.

    rebnconvin, then rebnconv1..rebnconv(L-1) with pool1..pool(L-2) between them, rebnconv(L)
    dilated by 2 at the bottom, and the decoder rebnconv(L-1)d..rebnconv1d on the concatenations.
    """

    def __init__(self, height, in_ch, mid_ch, out_ch):
        super().__init__()
        self.height = height
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        for i in range(1, height - 1):
            setattr(self, f"pool{i}", _pool())
            setattr(self, f"rebnconv{i + 1}", REBNCONV(mid_ch, mid_ch, dirate=1))
        setattr(self, f"rebnconv{height}", REBNCONV(mid_ch, mid_ch, dirate=2))
        for i in range(height - 1, 1, -1):
            setattr(self, f"rebnconv{i}d", REBNCONV(mid_ch * 2, mid_ch, dirate=1))
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x):
        L = self.height
        hxin = self.rebnconvin(x)
        enc = [self.rebnconv1(hxin)]                     # hx1 .. hx(L-1)
        for i in range(1, L - 1):
            hx = getattr(self, f"pool{i}")(enc[-1])
            enc.append(getattr(self, f"rebnconv{i + 1}")(hx))
        hx = getattr(self, f"rebnconv{L}")(enc[-1])      # hxL
        for i in range(L - 1, 0, -1):                    # hx(L-1)d .. hx1d
            hx = getattr(self, f"rebnconv{i}d")(torch.cat((hx, enc[i - 1]), 1))
            if i > 1:
                hx = _upsample_like(hx, enc[i - 2])
        return hx + hxin


class RSU7(_RSU):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__(7, in_ch, mid_ch, out_ch)


class RSU6(_RSU):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__(6, in_ch, mid_ch, out_ch)


class RSU5(_RSU):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__(5, in_ch, mid_ch, out_ch)


class RSU4(_RSU):
    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__(4, in_ch, mid_ch, out_ch)


class RSU4F(nn.Module):
    """RSU-4F: no pooling, dilations 1, 2, 4, 8 instead (the resolution stays)."""

    def __init__(self, in_ch=3, mid_ch=12, out_ch=3):
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, dirate=1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, dirate=1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, dirate=2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, dirate=4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, dirate=8)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, dirate=4)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, dirate=2)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, dirate=1)

    def forward(self, x):
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((hx2d, hx1), 1))
        return hx1d + hxin


class _U2Base(nn.Module):
    """The outer U: six encoder stages, five decoder stages, six side outputs fused by a 1x1."""

    def __init__(self, in_ch, out_ch, enc, dec, side_ch):
        super().__init__()
        # enc/dec: (block class, in, mid, out) per stage, official order and names.
        for i, (cls, a, m, b) in enumerate(enc, 1):
            setattr(self, f"stage{i}", cls(a, m, b))
            if i < 6:
                setattr(self, f"pool{i}{i + 1}", _pool())
        for i, (cls, a, m, b) in zip(range(5, 0, -1), dec):
            setattr(self, f"stage{i}d", cls(a, m, b))
        for i, c in enumerate(side_ch, 1):
            setattr(self, f"side{i}", nn.Conv2d(c, out_ch, 3, padding=1))
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def _maps(self, x):
        hx = [None] * 7
        h = x
        for i in range(1, 7):
            hx[i] = getattr(self, f"stage{i}")(h)
            if i < 6:
                h = getattr(self, f"pool{i}{i + 1}")(hx[i])
        d = _upsample_like(hx[6], hx[5])
        hd = [None] * 7
        hd[6] = hx[6]
        for i in range(5, 0, -1):
            hd[i] = getattr(self, f"stage{i}d")(torch.cat((d, hx[i]), 1))
            if i > 1:
                d = _upsample_like(hd[i], hx[i - 1])
        d1 = self.side1(hd[1])
        sides = [d1] + [_upsample_like(getattr(self, f"side{i}")(hd[i]), d1) for i in range(2, 7)]
        d0 = self.outconv(torch.cat(sides, 1))
        return [d0] + sides

    def forward(self, x):
        """The official output: sigmoid of (d0, d1, d2, d3, d4, d5, d6)."""
        return tuple(torch.sigmoid(d) for d in self._maps(x))

    def forward_d0(self, x):
        """Only the fused map d0, sigmoid included: what inference uses."""
        return torch.sigmoid(self._maps(x)[0])


class U2NET(_U2Base):
    """The full U2-Net (176.3 MB checkpoint, 44.0 M parameters)."""

    def __init__(self, in_ch=3, out_ch=1):
        super().__init__(
            in_ch, out_ch,
            enc=[(RSU7, in_ch, 32, 64), (RSU6, 64, 32, 128), (RSU5, 128, 64, 256),
                 (RSU4, 256, 128, 512), (RSU4F, 512, 256, 512), (RSU4F, 512, 256, 512)],
            dec=[(RSU4F, 1024, 256, 512), (RSU4, 1024, 128, 256), (RSU5, 512, 64, 128),
                 (RSU6, 256, 32, 64), (RSU7, 128, 16, 64)],
            side_ch=[64, 64, 128, 256, 512, 512])


class U2NETP(_U2Base):
    """The small U2-Net† (4.7 MB checkpoint, 1.13 M parameters)."""

    def __init__(self, in_ch=3, out_ch=1):
        super().__init__(
            in_ch, out_ch,
            enc=[(RSU7, in_ch, 16, 64), (RSU6, 64, 16, 64), (RSU5, 64, 16, 64),
                 (RSU4, 64, 16, 64), (RSU4F, 64, 16, 64), (RSU4F, 64, 16, 64)],
            dec=[(RSU4F, 128, 16, 64), (RSU4, 128, 16, 64), (RSU5, 128, 16, 64),
                 (RSU6, 128, 16, 64), (RSU7, 128, 16, 64)],
            side_ch=[64, 64, 64, 64, 64, 64])


# Later versions of the official file also name them so.
U2NET_full = U2NET
U2NET_lite = U2NETP


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    for cls in (U2NET, U2NETP):
        m = cls()
        print(f"{cls.__name__}: {count_parameters(m) / 1e6:.2f} M parameters, "
              f"{len(m.state_dict())} state_dict keys")
