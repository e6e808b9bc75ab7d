"""Exporting a U2-Net, U2-Netp or classic U-Net PyTorch checkpoint to ONNX that OpenCV 4.6 DNN
loads, with its ModelSpec sidecar (docs/MODEL_SPEC.md), and proving it: export(). The command
line is models/export.py.

What is written: ONNX opset 11, a static 1x3xSxS input named 'input', ONE output (U2-Net: the
fused map d0 with its sigmoid, named 'd0'; the side outputs d1..d6 are training aids and are left
out; U-Net: the logits, named 'logits'). Resize target sizes and pads are constants (the graph is
traced at the given size). Then OpenCV (cv2.dnn.readNetFromONNX) loads it and runs it on a
fixed picture, and its output must equal PyTorch's on the same input (max abs difference
printed; refused above 1e-3): a model OpenCV cannot load or computes differently is never
written. The sidecar OUT.json (same stem) carries the official U2-Net preprocessing: RGB,
stretch to SxS, divide by the resized image's maximum, ImageNet mean/std, output kind
probability, min-max normalisation per frame.

Checkpoints: the official u2net.pth / u2netp.pth (a plain state_dict) load unchanged; a dict
holding the state_dict under 'state_dict', 'model', 'model_state_dict' or 'net', and 'module.'
prefixes (DataParallel) are accepted too. A checkpoint whose keys or shapes do not fit the
chosen architecture is refused with the file, the first differing keys and what to do.

Without --checkpoint the weights are random (a fixed seed, BatchNorm statistics randomised too so
that the export of every layer is exercised): for tests and benchmarks only, and said so on
stderr.

Runs with Debian's /usr/bin/python3 and python3-torch, python3-onnx, python3-numpy,
python3-opencv.
"""

import json
import os
import sys
import tempfile
import warnings

import numpy as np
import onnx
import torch

from . import PrepareError, u2net, unet
from .checks import check_image, make_blob, opencv_forward, opencv_load

OPSET = 11
SEED = 20240611
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
TOLERANCE = 1e-3
ARCHS = ("u2net", "u2netp", "unet")


class ExportError(PrepareError):
    """A failure with a message meant for the user (what failed, and what to do)."""


# ---------------------------------------------------------------------------------------------
# Models

def build_model(arch, classes=1, depth=4, width=64, upsample="bilinear"):
    if arch == "u2net":
        return u2net.U2NET(3, 1)
    if arch == "u2netp":
        return u2net.U2NETP(3, 1)
    if arch == "unet":
        return unet.UNet(3, classes=classes, depth=depth, width=width, upsample=upsample)
    raise ExportError(f"unknown architecture '{arch}' (known: {', '.join(ARCHS)})")


def randomize(model, seed=SEED):
    """Deterministic random weights, including BatchNorm's affine and running statistics (the
    defaults, 1/0/0/1, would make every BatchNorm an identity and hide export errors there)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            m.reset_parameters()
        elif isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_((torch.rand(n, generator=gen) - 0.5) * 0.2)
                m.running_mean.copy_((torch.rand(n, generator=gen) - 0.5) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model


class _D0(torch.nn.Module):
    """U2-Net with only the fused, sigmoided output d0."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_d0(x)


def inference_module(arch, model):
    return _D0(model) if arch in ("u2net", "u2netp") else model


# ---------------------------------------------------------------------------------------------
# Checkpoints

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "params")


def read_state_dict(path):
    """The state_dict inside a checkpoint file, with clear messages for what is not one."""
    if not os.path.exists(path):
        raise ExportError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ExportError(f"{path} is a directory, not a checkpoint (.pth) file")
    if os.path.getsize(path) == 0:
        raise ExportError(f"{path} is empty (0 bytes): a failed download? Fetch it again.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu")
    except Exception as e:  # pickle/zip errors of every kind
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = ""
        if "No module named" in msg or "Can't get attribute" in msg:
            hint = (" It holds a whole pickled model object rather than a state_dict: load it "
                    "where its code lives and save model.state_dict() instead.")
        raise ExportError(f"{path} is not a PyTorch checkpoint that torch.load can read ({msg})."
                          f"{hint} Expected a .pth file saved with torch.save(model.state_dict())"
                          ", like the official u2net.pth / u2netp.pth.") from None
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for k in STATE_DICT_KEYS:
            if k in obj and isinstance(obj[k], dict):
                obj = obj[k]
                break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        kind = type(obj).__name__
        keys = ""
        if isinstance(obj, dict):
            keys = f" (its top-level keys: {', '.join(map(str, list(obj)[:8]))})"
        raise ExportError(f"{path} is readable by torch.load but holds no state_dict: a {kind}"
                          f"{keys}. Expected a dict of parameter tensors, saved with "
                          "torch.save(model.state_dict()).")
    if all(k.startswith("module.") for k in obj):  # saved from nn.DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _shape_misfits(state, reference):
    return [k for k in reference if k in state and tuple(state[k].shape) != tuple(reference[k].shape)]


def _compare(state, reference):
    optional = ("num_batches_tracked",)  # checkpoints of old PyTorch versions have none
    missing = [k for k in reference if k not in state and not k.endswith(optional)]
    unexpected = [k for k in state if k not in reference]
    return missing, unexpected, _shape_misfits(state, reference)


def _guess_architecture(state):
    """Which of our architectures (and U-Net options) this state_dict is, or None."""
    for arch in ("u2net", "u2netp"):
        ref = build_model(arch).state_dict()
        if not any(_compare(state, ref)):
            return arch, {}
    w = state.get("inc.conv.0.weight")
    out = state.get("outc.weight")
    if w is not None and out is not None and w.dim() == 4 and out.dim() == 4:
        depth = len({k.split(".")[1] for k in state if k.startswith("downs.")})
        opts = {"classes": int(out.shape[0]), "depth": depth, "width": int(w.shape[0]),
                "upsample": "transposed" if any(".up.weight" in k for k in state) else "bilinear"}
        try:
            ref = build_model("unet", **opts).state_dict()
        except ValueError:
            return None
        if not any(_compare(state, ref)):
            return "unet", opts
    return None


def _unet_args(opts):
    return (f"--classes {opts['classes']} --depth {opts['depth']} --width {opts['width']} "
            f"--upsample {opts['upsample']}")


def load_checkpoint(model, path, arch, describe=""):
    """Loads path into model, refusing a checkpoint that does not fit with a clear message."""
    state = read_state_dict(path)
    reference = model.state_dict()
    missing, unexpected, misfits = _compare(state, reference)
    if missing or unexpected or misfits:
        what = [f"{path} does not fit the {arch}{describe} architecture:"]
        if missing:
            what.append(f"{len(missing)} keys missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            what.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if misfits:
            k = misfits[0]
            what.append(f"{len(misfits)} tensors of another shape (e.g. {k}: "
                        f"{tuple(state[k].shape)} in the file, {tuple(reference[k].shape)} "
                        "here)")
        guess = _guess_architecture(state)
        if guess and guess[0] != arch:
            names = {"u2net": "a U2-Net (full, 44.0 M)", "u2netp": "a U2-Netp (small, 1.13 M)",
                     "unet": "a classic U-Net"}
            extra = f" {_unet_args(guess[1])}" if guess[0] == "unet" else ""
            hint = f"this is {names[guess[0]]} checkpoint: use '{guess[0]}{extra}', not '{arch}'"
        elif guess:  # a U-Net with other options
            hint = f"this is a U-Net checkpoint with other options: use 'unet {_unet_args(guess[1])}'"
        else:
            hint = ("it is not a checkpoint of u2net, u2netp or unet as defined in models/ "
                    "(official u2net.pth/u2netp.pth load unchanged); check that the file is the "
                    "one you meant, or export it from the code that trained it")
        raise ExportError(what[0] + " " + "; ".join(what[1:]) + ". What to do: " + hint + ".")
    model.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent
    return model


# ---------------------------------------------------------------------------------------------
# Sidecar

def sidecar(arch, size, name, classes=1):
    if arch in ("u2net", "u2netp"):
        return {
            "name": name,
            "input": {"width": size, "height": size, "color_order": "RGB",
                      "normalize_by_max": True, "resize": "antialias",
                      "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
            "output": {"index": 0, "kind": "probability", "minmax": True, "resize": "pil"},
        }
    # Classic U-Net: no published weights, so the convention is ours: RGB, x/255, ImageNet
    # mean/std (what torchvision-style training uses); logits out.
    out = {"index": 0, "kind": "logit" if classes == 1 else "class_logits", "minmax": False}
    if classes > 1:
        out["labels"] = ["background"] + [f"class{i}" for i in range(1, classes)]
    return {
        "name": name,
        "input": {"width": size, "height": size, "color_order": "RGB", "scale": 1.0 / 255,
                  "normalize_by_max": False, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "output": out,
    }


# ---------------------------------------------------------------------------------------------
# Export and check

def export_onnx(module, size, path, output_name):
    dummy = torch.zeros(1, 3, size, size)
    with warnings.catch_warnings():
        # The int() of traced sizes (static shapes are the point) and torch's own notes.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, dummy, path, opset_version=OPSET, input_names=["input"],
                          output_names=[output_name], do_constant_folding=True,
                          dynamic_axes=None)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    return model


def check_opencv(path, module, size, spec, log, image=None):
    """OpenCV loads and runs the file; its output equals PyTorch's on the same blob."""
    cv2, net = opencv_load(path, "exported model", error=ExportError)
    img = check_image(image, size=max(size, 64))
    blob = make_blob(img, size, size, spec["input"])
    try:
        out, seconds = opencv_forward(net, blob)
    except cv2.error as e:
        raise ExportError(f"OpenCV {cv2.__version__} loads the exported model but its forward "
                          f"pass fails: {str(e).strip()}") from None
    with torch.no_grad():
        ref = module(torch.from_numpy(blob)).numpy()
    if out.shape != ref.shape:
        raise ExportError(f"OpenCV's output has the shape {out.shape}, PyTorch's {ref.shape}")
    diff = float(np.abs(out - ref).max())
    log(f"  check: OpenCV {cv2.__version__} loads it; forward on 1x3x{size}x{size}: output "
        f"{'x'.join(map(str, out.shape))} in {seconds:.2f} s; max |OpenCV - PyTorch| = "
        f"{diff:.3g}")
    if not np.isfinite(diff) or diff > TOLERANCE:
        raise ExportError(f"OpenCV's output differs from PyTorch's by {diff:.3g} (more than "
                          f"{TOLERANCE:g}): the exported graph is not read the way PyTorch "
                          "computes it")
    return {"forward_s": seconds, "max_abs_diff": diff}


def export(arch, out_path, checkpoint=None, size=320, classes=1, depth=4, width=64,
           upsample="bilinear", name=None, log=print, warn=None, check=True, image=None,
           seed=SEED):
    """Writes out_path (.onnx) and its sidecar; returns the check's numbers. Nothing is left
    behind on failure."""
    warn = warn or (lambda m: print(m, file=sys.stderr, flush=True))
    if not (16 <= size <= 4096):
        raise ExportError(f"--size {size}: give an input side between 16 and 4096")
    if not out_path.endswith(".onnx"):
        raise ExportError(f"{out_path}: the output must be a .onnx file (the sidecar is written "
                          "beside it with the same stem)")
    out_dir = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(out_dir):
        raise ExportError(f"the output directory {out_dir} does not exist")
    try:
        model = build_model(arch, classes=classes, depth=depth, width=width, upsample=upsample)
    except ValueError as e:
        raise ExportError(str(e)) from None
    if arch == "unet" and size < 2 ** depth:
        raise ExportError(f"--size {size} is too small for a U-Net of depth {depth} "
                          f"(at least {2 ** depth})")
    describe = f" ({_unet_args({'classes': classes, 'depth': depth, 'width': width, 'upsample': upsample})})" \
        if arch == "unet" else ""
    if checkpoint:
        load_checkpoint(model, checkpoint, arch, describe)
        log(f"loaded {checkpoint} into {arch}{describe}")
    else:
        randomize(model, seed)
        warn(f"export.py: WARNING: no --checkpoint: {arch} gets RANDOM weights (seed {seed}). "
             "The model segments nothing meaningful: for tests and benchmarks only.")
    model.eval()
    module = inference_module(arch, model).eval()
    name = name or os.path.splitext(os.path.basename(out_path))[0]
    spec = sidecar(arch, size, name, classes)
    output_name = "d0" if arch in ("u2net", "u2netp") else "logits"

    json_path = os.path.splitext(out_path)[0] + ".json"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix="." + os.path.basename(out_path) + ".",
                               suffix=".onnx")
    os.close(fd)
    try:
        export_onnx(module, size, tmp, output_name)
        log(f"exported {arch} at {size}x{size}: opset {OPSET}, output '{output_name}'")
        result = check_opencv(tmp, module, size, spec, log, image) if check else {}
        os.chmod(tmp, 0o644)
        with open(json_path + ".tmp", "w") as f:
            json.dump(spec, f, indent=2)
            f.write("\n")
        os.replace(tmp, out_path)
        os.replace(json_path + ".tmp", json_path)
    except BaseException:
        for p in (tmp, json_path + ".tmp"):
            if os.path.exists(p):
                os.remove(p)
        raise
    log(f"wrote {out_path} and {json_path}")
    return result
