"""TensorFlow.js itself, in node, running an original TF.js graph model: the reference that the
ONNX of tfjs.py is compared with (tests/models/test_tfjs.py).

The packages (@tensorflow/tfjs-core, -converter, -backend-cpu, pinned by models/tfjs-reference/
package.json + package-lock.json) are installed with `npm ci` into
${XDG_CACHE_HOME:-$HOME/.cache}/unetseg/node/<sha256 of the lock, 16 hex> (never into the source
tree), once: a stamp written last says the install is complete. The runner is
models/tfjs-reference/run.js. Needs node and npm (Debian's nodejs and npm packages, or any node
>= 18) and the npm registry once.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np

from . import PrepareError
from .catalog import MODELS_DIR, cache_root

REFERENCE_DIR = os.path.join(MODELS_DIR, "tfjs-reference")
RUNNER = os.path.join(REFERENCE_DIR, "run.js")


def install(log=print):
    """Runs `npm ci` into the cache when needed; returns the node_modules directory."""
    lock = os.path.join(REFERENCE_DIR, "package-lock.json")
    with open(lock, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    home = os.path.join(cache_root(), "node", f"tfjs-reference-{digest}")
    stamp = os.path.join(home, ".installed")
    modules = os.path.join(home, "node_modules")
    if os.path.exists(stamp):
        return modules
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise PrepareError(f"the TF.js reference needs {tool} (apt-get install nodejs npm)")
    os.makedirs(os.path.dirname(home), exist_ok=True)
    work = tempfile.mkdtemp(dir=os.path.dirname(home), prefix=".tfjs-reference.")
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(os.path.join(REFERENCE_DIR, name), os.path.join(work, name))
        log(f"tfjs-reference: npm ci into {home}")
        r = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                            "--loglevel=error"], cwd=work, capture_output=True, text=True,
                           timeout=900, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise PrepareError(f"npm ci of {REFERENCE_DIR}/package-lock.json failed (no access "
                               f"to the npm registry?): {(r.stderr or r.stdout).strip()[-800:]}")
        with open(os.path.join(work, ".installed"), "w") as f:
            f.write(digest + "\n")
        if os.path.exists(home):  # a half install of an earlier, interrupted run
            shutil.rmtree(home)
        os.replace(work, home)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return modules


def signature(model_json):
    """({input key: node name}, {output key: node name}) of a TF.js model.json."""
    with open(model_json) as f:
        sig = json.load(f).get("signature", {})

    def names(part):
        return {k.split(":")[0]: v["name"].split(":")[0] for k, v in sig.get(part, {}).items()}
    return names("inputs"), names("outputs")


def run(model_json, steps, log=print):
    """Runs the model with TF.js once per step. Each step: {"feeds": {input key: numpy array
    (NHWC as TF.js takes it) | float (a scalar) | ("previous", output key)}, "outputs": [output
    keys]}; returns one {output key: numpy array} per step. ("previous", KEY) feeds the output
    KEY of the step before, as TF.js computed it (a recurrent state fed back)."""
    modules = install(log)
    inputs, outputs = signature(model_json)
    with tempfile.TemporaryDirectory(prefix="tfjs-reference.") as tmp:
        job = {"model": os.path.abspath(model_json), "steps": []}
        for k, step in enumerate(steps):
            feeds = {}
            for key, value in step["feeds"].items():
                name = inputs.get(key, key)
                if isinstance(value, tuple) and value[0] == "previous":
                    feeds[name] = {"previous": outputs[value[1]]}
                elif isinstance(value, (int, float)):
                    feeds[name] = {"scalar": float(value)}
                else:
                    path = os.path.join(tmp, f"in-{k}-{key}.npy")
                    np.save(path, np.ascontiguousarray(value, dtype=np.float32))
                    feeds[name] = {"npy": path}
            job["steps"].append({"feeds": feeds, "save": os.path.join(tmp, f"out-{k}"),
                                 "outputs": [outputs[o] for o in step["outputs"]]})
        with open(os.path.join(tmp, "job.json"), "w") as f:
            json.dump(job, f)
        r = subprocess.run(["node", RUNNER, os.path.join(tmp, "job.json")], capture_output=True,
                           text=True, timeout=1800, env=dict(os.environ, NODE_PATH=modules))
        if r.returncode != 0:
            raise PrepareError(f"TF.js could not run {model_json}: {r.stderr.strip()[-1500:]}")
        results = []
        for k, step in enumerate(job["steps"]):
            results.append({o: np.load(os.path.join(step["save"],
                                                    outputs[o].replace("/", "__") + ".npy"))
                            for o in steps[k]["outputs"]})
        return results
