"""The official U2-Net test-time pipeline (github.com/xuebinqin/U-2-Net, u2net_test.py with
data_loader.py), step for step, as the reference the element is measured against.

    image = skimage.io.imread(path)                                   # RGB uint8
    RescaleT(320):  transform.resize(image, (320, 320), mode='constant')
    ToTensorLab(flag=0):  image / np.max(image), then (c - mean[c]) / std[c],
                          mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)   (float64)
    inputs.type(torch.FloatTensor); d1, ... = net(inputs)             # d1 is the fused map d0
    normPRED:       (d - min) / (max - min)
    save_output:    Image.fromarray(pred * 255).convert('RGB')        # 8-bit: TRUNCATES
                    .resize((w, h), resample=Image.BILINEAR)

What the resize-in step is, precisely (scikit-image 0.19, Debian's python3-skimage): the uint8
image becomes float64 in [0, 1] (img_as_float), order=1 (bilinear), and anti_aliasing defaults
to True whenever any output side is smaller than the input's: a Gaussian blur with
sigma = max(0, (in/out - 1) / 2) per axis (0 for the channel axis and for axes that grow)
first, with mode 'constant' -> ndimage 'constant' (zeros outside the image, so the border rows/
columns darken a little). Then scipy.ndimage.zoom with grid_mode=True (pixel-area centres:
x_in = (x_out + 0.5) * in/out - 0.5) and mode 'grid-constant' (samples outside the image are
zeros, so when the image GROWS the outermost output pixels blend with black). The result stays
float: no 8-bit rounding before the network.

The quantisation is PIL's float -> 8-bit conversion, which truncates (int(v) clipped to
0..255), not rounds; the resize back is PIL's BILINEAR (its resampling filter: plain bilinear
when the mask grows, a widened triangle filter when it shrinks).

Needs python3-torch, python3-numpy, python3-skimage, python3-pil (Debian packages). On one
image, from models/:  python3 -m unetseg_models.u2net_reference u2netp PHOTO MASK.png
"""

import os
import sys

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def read_image(path):
    """skimage.io.imread as the official data loader does; grey images become 3 channels."""
    from skimage import io
    image = io.imread(path)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image[:, :, :3]


def rescale(image, size=320):
    """RescaleT(size): skimage.transform.resize(image, (size, size), mode='constant')."""
    from skimage import transform
    return transform.resize(image, (size, size), mode="constant")


def to_tensor_lab(image):
    """ToTensorLab(flag=0) on the resized float image: 3 x H x W float64."""
    image = image / np.max(image)
    out = np.zeros((image.shape[0], image.shape[1], 3))
    if image.shape[2] == 1:
        for c in range(3):
            out[:, :, c] = (image[:, :, 0] - MEAN[c]) / STD[c]
    else:
        for c in range(3):
            out[:, :, c] = (image[:, :, c] - MEAN[c]) / STD[c]
    return out.transpose((2, 0, 1))


def norm_pred(d):
    ma, mi = d.max(), d.min()
    return (d - mi) / (ma - mi)


def predict(net, image, size=320):
    """The normalised prediction at size x size (float32 in [0, 1]), from an RGB uint8 image.
    `net` is a U2NET/U2NETP (all 7 outputs; d1 of the official code is our d0)."""
    import torch
    x = torch.from_numpy(to_tensor_lab(rescale(image, size))[None]).type(torch.FloatTensor)
    with torch.no_grad():
        d = net(x)[0]
    return norm_pred(d)[0, 0].numpy()


def to_mask(pred, width, height):
    """save_output: 8-bit (truncated) and PIL bilinear back to the image's size; H x W uint8."""
    from PIL import Image
    im = Image.fromarray(pred * 255).convert("RGB")
    imo = im.resize((width, height), resample=Image.BILINEAR)
    return np.asarray(imo)[:, :, 0].copy()


def reference_mask(net, path, size=320):
    image = read_image(path)
    return to_mask(predict(net, image, size), image.shape[1], image.shape[0])


def main(argv=None):
    import argparse
    import torch
    from . import export
    parser = argparse.ArgumentParser(
        description="The official U2-Net test-time pipeline on one image (reference).")
    parser.add_argument("arch", choices=["u2net", "u2netp"])
    parser.add_argument("image")
    parser.add_argument("out", help="the mask (PNG)")
    parser.add_argument("--checkpoint", help="weights; without: export.py's random weights")
    parser.add_argument("--size", type=int, default=320)
    args = parser.parse_args(argv)
    net = export.build_model(args.arch)
    if args.checkpoint:
        export.load_checkpoint(net, args.checkpoint, args.arch)
    else:
        export.randomize(net)
    net.eval()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from PIL import Image
    Image.fromarray(reference_mask(net, args.image, args.size)).save(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
