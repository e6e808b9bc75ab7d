"""unetseg's model tooling: ONNX models made loadable by OpenCV DNN and proved, the catalog's
fetcher, and the U-Net family in PyTorch with its exporter.

    graph            loading ONNX files (sorted producers first), attribute/initializer helpers
    rewrites         the exact rewrites (fp16_to_fp32, fix_conv_transpose_pads, fix_input_size,
                     keep_output, clip_to_attributes, fix_batch) and the steps that name them
    batch            fix_batch:N: a batch-1 graph made to take N frames, or refused
    versions         the target OpenCV version and which rewrites it needs (plan_steps)
    reference        the numpy evaluator of ONNX graphs, the check's reference
    checks           OpenCV load/forward/compare, check picture and blob, --check-with PROGRAM
    prepare          prepare_file: load, rewrite, check, write
    catalog, fetch   models/catalog.toml, the cache, downloads, fetching one model
    tfjs             TF.js graph models to ONNX (convert_tfjs): reading, dequantisation;
                     tfjs_ops (evaluation for one size), tfjs_layers + tfjs_tensors (the op
                     translations), tfjs_simplify (folding); tfjs_reference (TF.js in node)
    u2net, unet      U2-Net/U2-Netp and the classic U-Net in PyTorch
    export           a PyTorch checkpoint to ONNX + sidecar, checked in OpenCV
    u2net_reference  the official U2-Net test-time pipeline

The command lines are models/prepare.py, models/fetch.py (scripts/fetch-model.sh),
models/convert_tfjs.py and models/export.py; they find this package beside them. Anything else
imports it with PYTHONPATH=models (tests/meson.build sets it for the tests that do).
cli.py is `unetseg-models` (list, fetch, path, verify): meson installs this package and the
catalog into PREFIX/share/unetseg, and a launcher in PREFIX/bin that runs cli.py with
PYTHONPATH set to that directory.
"""


class PrepareError(Exception):
    """A failure with a message meant for the user (what failed, and what to do)."""
