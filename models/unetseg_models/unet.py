"""The classic U-Net (Ronneberger et al., 2015), with 'same' padding so that the output has the
input's size, and the usual modern choices (BatchNorm after each 3x3 conv).

    UNet(in_ch=3, classes=1, depth=4, width=64, upsample="bilinear" | "transposed")

depth     number of 2x down-samplings (the paper: 4); the encoder has depth + 1 levels.
width     channels at the first level; level i has width * 2**i (the paper: 64 .. 1024).
classes   output channels: logits N x classes x H x W (1: sigmoid -> foreground probability;
          >= 2: softmax over classes, class 0 = background).
upsample  "bilinear": bilinear 2x (align_corners=False) then the double conv on the concatenation
          (fewer parameters, the bottom level keeps width * 2**(depth-1) channels);
          "transposed": a 2x2 stride-2 transposed conv halving the channels (the paper's
          up-convolution).

Any input side >= 2**depth works (smaller ones vanish at the bottom): a level whose size is odd is max-pooled with floor, and on the way up
the upsampled map is brought to the skip connection's exact size (bilinear: resized straight to
it; transposed: zero-padded by the missing row/column at the bottom/right), so the output size
always equals the input size. Sizes divisible by 2**depth need no padding at all.

Runs with Debian's /usr/bin/python3 and python3-torch.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["UNet", "DoubleConv"]


def _size_of(t):
    # Python ints while tracing for export (static shapes): constant Resize sizes / Pad pads.
    if torch.jit.is_tracing():
        return [int(s) for s in t.shape[2:]]
    return list(t.shape[2:])


class DoubleConv(nn.Module):
    """(3x3 conv, padding 1 -> BatchNorm -> ReLU) twice."""

    def __init__(self, in_ch, out_ch, mid_ch=None):
        super().__init__()
        mid_ch = mid_ch or out_ch
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, mid_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True))

    def forward(self, x):
        return self.conv(x)


class Down(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = DoubleConv(in_ch, out_ch)

    def forward(self, x):
        return self.conv(self.pool(x))


class Up(nn.Module):
    def __init__(self, in_ch, skip_ch, out_ch, upsample):
        super().__init__()
        self.bilinear = upsample == "bilinear"
        if self.bilinear:
            self.conv = DoubleConv(in_ch + skip_ch, out_ch)
        else:
            self.up = nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_ch // 2 + skip_ch, out_ch)

    def forward(self, x, skip):
        size = _size_of(skip)
        if self.bilinear:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        else:
            x = self.up(x)
            have = _size_of(x)
            dy, dx = size[0] - have[0], size[1] - have[1]
            if dy or dx:  # odd skip size: 2 * floor(s / 2) = s - 1
                x = F.pad(x, [0, dx, 0, dy])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    def __init__(self, in_ch=3, classes=1, depth=4, width=64, upsample="bilinear"):
        super().__init__()
        if upsample not in ("bilinear", "transposed"):
            raise ValueError(f"upsample must be 'bilinear' or 'transposed', not {upsample!r}")
        if depth < 1 or width < 1 or classes < 1 or in_ch < 1:
            raise ValueError("depth, width, classes and in_ch must be >= 1")
        self.in_ch, self.classes, self.depth, self.width = in_ch, classes, depth, width
        self.upsample = upsample
        ch = [width * 2 ** i for i in range(depth + 1)]
        if upsample == "bilinear":
            ch[depth] = ch[depth - 1]  # no channel-halving upconv: keep the bottom lean
        self.inc = DoubleConv(in_ch, ch[0])
        self.downs = nn.ModuleList(Down(ch[i], ch[i + 1]) for i in range(depth))
        ups = []
        x_ch = ch[depth]
        for i in range(depth - 1, -1, -1):
            out = ch[i] if upsample == "transposed" or i == 0 else ch[i - 1]
            ups.append(Up(x_ch, ch[i], out, upsample))
            x_ch = out
        self.ups = nn.ModuleList(ups)
        self.outc = nn.Conv2d(x_ch, classes, kernel_size=1)

    def forward(self, x):
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for up in self.ups:
            h = up(h, skips.pop())
        return self.outc(h)


if __name__ == "__main__":
    for up in ("bilinear", "transposed"):
        m = UNet(upsample=up)
        n = sum(p.numel() for p in m.parameters())
        print(f"UNet(depth 4, width 64, {up}): {n / 1e6:.2f} M parameters")
