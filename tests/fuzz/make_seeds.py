#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora: the real sidecars and the test models.

Usage: /usr/bin/python3 tests/fuzz/make_seeds.py OUTDIR

  OUTDIR/sidecar/  models/sinet.json; every [model.sidecar] table of models/catalog.toml
                   rendered as the JSON models/fetch.py writes; the test models' sidecars
                   (tests/models/make_test_models.py); and a few at the limits the reader
                   enforces (16 levels of nesting, 256 labels, a float-overflowing scale)
  OUTDIR/onnx/     the test models' graphs, their weights emptied (the walker skips weights, and
                   small seeds mutate faster), plus the two smallest as they are

Everything comes from the source tree (python3-onnx for the test models): no cache, no download.
"""

import json
import os
import subprocess
import sys
import tempfile
import tomllib

import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    sidecars = os.path.join(out, 'sidecar')
    graphs = os.path.join(out, 'onnx')
    os.makedirs(sidecars, exist_ok=True)
    os.makedirs(graphs, exist_ok=True)

    with open(os.path.join(ROOT, 'models', 'sinet.json'), 'rb') as f:
        write(os.path.join(sidecars, 'sinet-source.json'), f.read())
    with open(os.path.join(ROOT, 'models', 'catalog.toml'), 'rb') as f:
        catalog = tomllib.load(f)
    for model in catalog['model']:
        text = json.dumps(model['sidecar'], indent=2) + '\n'
        write(os.path.join(sidecars, 'catalog-%s.json' % model['name']), text.encode())

    base = json.loads(json.dumps(catalog['model'][0]['sidecar']))
    for name, spec in edge_sidecars(base):
        write(os.path.join(sidecars, 'edge-%s.json' % name), json.dumps(spec).encode())

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'models', 'make_test_models.py'),
                        tmp], check=True, stdout=subprocess.DEVNULL)
        names = sorted(n[:-5] for n in os.listdir(tmp) if n.endswith('.onnx'))
        for name in names:
            with open(os.path.join(tmp, name + '.json'), 'rb') as f:
                write(os.path.join(sidecars, 'test-%s.json' % name), f.read())
            model = onnx.load(os.path.join(tmp, name + '.onnx'))
            for init in model.graph.initializer:
                init.ClearField('raw_data')
                init.ClearField('float_data')
            write(os.path.join(graphs, 'test-%s-noweights.onnx' % name), model.SerializeToString())
        by_size = sorted(names, key=lambda n: os.path.getsize(os.path.join(tmp, n + '.onnx')))
        for name in by_size[:2]:
            with open(os.path.join(tmp, name + '.onnx'), 'rb') as f:
                write(os.path.join(graphs, 'test-%s.onnx' % name), f.read())
    print('%d sidecar and %d onnx seeds in %s' % (len(os.listdir(sidecars)),
                                                 len(os.listdir(graphs)), out))


def edge_sidecars(base):
    """Valid or nearly valid sidecars at the reader's limits (lib/src/model_spec.cpp)."""
    deep = json.loads(json.dumps(base))
    deep['extra'] = 0
    for _ in range(15):  # 16 levels with the root object: the most accepted
        deep['extra'] = [deep['extra']]
    yield 'depth16', deep
    labels = json.loads(json.dumps(base))
    labels['output'] = {'kind': 'class_logits', 'labels': ['c%d' % i for i in range(256)]}
    yield 'labels256', labels
    huge = json.loads(json.dumps(base))
    huge['input']['scale'] = 1e300
    huge['input']['std'] = [1e-300, 1, 1]
    yield 'float-range', huge


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


if __name__ == '__main__':
    main()
