"""gstunetseg: the unetseg mask of a GStreamer buffer as a numpy array, in one call.

    import gstunetseg
    mask = gstunetseg.mask_array(sample)                  # the model's resolution, uint8 H x W
    mask = gstunetseg.mask_array(sample, size="frame")    # stretched over the frame, as drawn

Pure Python over the GstUnetseg-1.0 typelib (the GstUnetsegMaskMeta the unetseg element
attaches, see gstunetsegmeta.h) and numpy; no OpenCV. Needs python3-gi and python3-numpy.

The mask's pixels are what the meta holds: for a foreground model the soft probability
0 (background) .. 255 (foreground), whatever the element's threshold and soft-mask (those only
change the drawing: `mask >= 128` is the foreground at the default threshold); for a multi-class
model the class id of each pixel (see `labels()`).
"""
import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
gi.require_version("GstUnetseg", "1.0")
from gi.repository import GLib, Gst, GstUnetseg, GstVideo  # noqa: E402

import numpy as np  # noqa: E402

__all__ = ["mask_array", "resize", "labels", "MaskType"]

MaskType = GstUnetseg.MaskType


def _buffer_and_caps(buffer_or_sample):
    if isinstance(buffer_or_sample, Gst.Sample):
        return buffer_or_sample.get_buffer(), buffer_or_sample.get_caps()
    if isinstance(buffer_or_sample, Gst.Buffer):
        return buffer_or_sample, None
    raise TypeError("mask_array: a Gst.Buffer or a Gst.Sample, not %s"
                    % type(buffer_or_sample).__name__)


def _meta(buffer_or_sample):
    buffer, _ = _buffer_and_caps(buffer_or_sample)
    return GstUnetseg.buffer_get_unetseg_mask_meta(buffer)


def _model_mask(meta):
    """The meta's GRAY8 mask as a (height, width) uint8 array, its stride and offset honoured."""
    vmeta = GstVideo.buffer_get_video_meta(meta.mask)
    if vmeta is None:
        raise ValueError("unetseg mask meta: its mask buffer has no GstVideoMeta")
    width, height = vmeta.width, vmeta.height
    stride, offset = vmeta.stride[0], vmeta.offset[0]
    ok, info = meta.mask.map(Gst.MapFlags.READ)
    if not ok:
        raise RuntimeError("unetseg mask meta: cannot map the mask buffer")
    try:
        data = info.data  # bytes: a copy, so the array outlives the mapping
    finally:
        meta.mask.unmap(info)
    if offset + stride * (height - 1) + width > len(data):
        raise ValueError("unetseg mask meta: a %dx%d mask with stride %d does not fit in %d bytes"
                         % (width, height, stride, len(data)))
    pixels = np.frombuffer(data, dtype=np.uint8)
    end = offset + stride * height
    if len(pixels) < end:  # the last row may stop at its width, short of a whole stride
        pixels = np.concatenate([pixels, np.zeros(end - len(pixels), dtype=np.uint8)])
    return pixels[offset:end].reshape(height, stride)[:, :width].copy()


def _axis(src, dst, nearest):
    """Source index/indices and weights of each destination pixel along one axis, pixel centres
    aligned (as cv2.resize): dst pixel d samples src at (d + 0.5) * src / dst - 0.5."""
    pos = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
    if nearest:
        return np.clip(np.floor(pos + 0.5), 0, src - 1).astype(np.intp), None, None
    pos = np.clip(pos, 0, src - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, src - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def resize(mask, width, height, interpolation="bilinear"):
    """A uint8 mask resized to width x height: "bilinear" (soft masks; what the element does to
    draw) or "nearest" (class ids, which must not be blended)."""
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError('interpolation: "bilinear" or "nearest", not %r' % (interpolation,))
    if width <= 0 or height <= 0:
        raise ValueError("resize: a size of at least 1x1, not %dx%d" % (width, height))
    h, w = mask.shape
    if (w, h) == (width, height):
        return mask.copy()
    nearest = interpolation == "nearest"
    y0, y1, fy = _axis(h, height, nearest)
    x0, x1, fx = _axis(w, width, nearest)
    if nearest:
        return mask[y0[:, None], x0[None, :]]
    m = mask.astype(np.float32)
    top = m[y0][:, x0] * (1 - fx) + m[y0][:, x1] * fx
    bottom = m[y1][:, x0] * (1 - fx) + m[y1][:, x1] * fx
    out = top * (1 - fy)[:, None] + bottom * fy[:, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _frame_size(buffer, caps, meta):
    if caps is not None and caps.get_size() > 0:
        s = caps.get_structure(0)
        okw, w = s.get_int("width")
        okh, h = s.get_int("height")
        if okw and okh:
            return w, h
    vmeta = GstVideo.buffer_get_video_meta(buffer)
    if vmeta is not None:
        return vmeta.width, vmeta.height
    # The element's rectangle covers the whole frame; videoscale scales it with the frame.
    return meta.x + meta.width, meta.y + meta.height


def mask_array(buffer_or_sample, size="model", *, frame_size=None, interpolation=None):
    """The unetseg mask of a buffer as a uint8 numpy array (rows x columns), or None when the
    buffer carries no mask meta.

    buffer_or_sample: a Gst.Buffer, or a Gst.Sample (appsink's pull_sample(); its caps give the
        frame's size).
    size: "model": the mask at the model's resolution, as the meta holds it;
          "frame": the mask stretched over the rectangle of the frame it covers, in an array the
          size of the frame (0 outside the rectangle). The frame's size comes from frame_size,
          else the sample's caps, else the buffer's GstVideoMeta, else the rectangle's far corner
          (right for unetseg's own frames, whose rectangle is the whole frame);
          (width, height): the mask resized to that size.
    interpolation: "bilinear" (the default for foreground masks) or "nearest" (the default, and
        the only sensible choice, for multi-class masks of class ids).
    """
    buffer, caps = _buffer_and_caps(buffer_or_sample)
    meta = GstUnetseg.buffer_get_unetseg_mask_meta(buffer)
    if meta is None:
        return None
    if interpolation is None:
        interpolation = "nearest" if meta.type == MaskType.SEMANTIC else "bilinear"
    mask = _model_mask(meta)
    if isinstance(size, str):
        if size == "model":
            return mask
        if size != "frame":
            raise ValueError('size: "model", "frame" or (width, height), not %r' % (size,))
        fw, fh = frame_size if frame_size is not None else _frame_size(buffer, caps, meta)
        out = np.zeros((fh, fw), dtype=np.uint8)
        if meta.width <= 0 or meta.height <= 0:
            return out
        stretched = resize(mask, meta.width, meta.height, interpolation)
        # Place it at (x, y), clipped to the frame.
        x0, y0 = max(meta.x, 0), max(meta.y, 0)
        x1, y1 = min(meta.x + meta.width, fw), min(meta.y + meta.height, fh)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = stretched[y0 - meta.y:y1 - meta.y, x0 - meta.x:x1 - meta.x]
        return out
    width, height = size
    return resize(mask, int(width), int(height), interpolation)


def labels(buffer_or_sample):
    """{region id: label or None} of the buffer's mask meta ({} when it has none): for a
    foreground model {0: "background", 1: "foreground"} or as its sidecar names them."""
    meta = _meta(buffer_or_sample)
    if meta is None:
        return {}
    return {int(i): (GLib.quark_to_string(q) if q else None)
            for i, q in zip(meta.region_ids or [], meta.labels or [])}
