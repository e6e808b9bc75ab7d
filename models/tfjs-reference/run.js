#!/usr/bin/env node
// Runs a TensorFlow.js graph model with TensorFlow.js itself (tfjs-core + tfjs-converter + the
// CPU backend, in node): the reference that the ONNX written by models/convert_tfjs.py is
// compared with (models/unetseg_models/tfjs_reference.py drives it; tests/models/test_tfjs.py).
//
//   node run.js JOB.json
//
// JOB.json: {"model": "/path/model.json",
//            "steps": [{"feeds": {NAME: FEED, ...}, "outputs": [NODE, ...], "save": "/dir"}, ...]}
// FEED: {"npy": "/path/x.npy"} (little-endian float32 or int32, C order), {"scalar": 1.0}, or
//       {"previous": NODE} (that output of the step before: a recurrent state fed back).
// Each step runs model.executeAsync(feeds, outputs) (executeAsync: the graph may hold control
// flow) and writes each output as SAVE/NODE.npy ("/" in a node name becomes "__").
//
// The packages are pinned by package.json + package-lock.json beside this file and installed
// with `npm ci` outside the source tree; NODE_PATH points at that node_modules.
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfconv = require('@tensorflow/tfjs-converter');

function fail(msg) {
  process.stderr.write(`tfjs-reference: error: ${msg}\n`);
  process.exit(1);
}

// --- .npy (format 1.0, little-endian float32 / int32, C order) -----------------------------

const NPY_MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (!buf.subarray(0, 6).equals(NPY_MAGIC)) fail(`${file} is not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.subarray(start, start + headerLen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const order = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !order || !shapeText) fail(`${file}: cannot read the .npy header ${header}`);
  if (order[1] !== 'False') fail(`${file}: Fortran order is not supported`);
  const shape = shapeText[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const data = buf.subarray(start + headerLen);
  const copy = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  if (descr[1] === '<f4') return tf.tensor(new Float32Array(copy), shape, 'float32');
  if (descr[1] === '<i4') return tf.tensor(new Int32Array(copy), shape, 'int32');
  fail(`${file}: dtype ${descr[1]} is not supported (float32 or int32)`);
}

function writeNpy(file, tensor) {
  const data = tensor.dataSync();
  const descr = tensor.dtype === 'int32' ? '<i4' : '<f4';
  const shape = tensor.shape.length === 1 ? `${tensor.shape[0]},` : tensor.shape.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  NPY_MAGIC.copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = tensor.dtype === 'int32' ? Buffer.from(new Int32Array(data).buffer)
    : Buffer.from(new Float32Array(data).buffer);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
}

// --- the model, read from disk ----------------------------------------------------------------

function fileHandler(modelPath) {
  return {
    load: async () => {
      const json = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      const specs = [];
      const shards = [];
      for (const group of json.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) {
          const b = fs.readFileSync(path.join(path.dirname(modelPath), p));
          shards.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
        }
      }
      const total = shards.reduce((n, s) => n + s.byteLength, 0);
      const weightData = new Uint8Array(total);
      let at = 0;
      for (const s of shards) {
        weightData.set(new Uint8Array(s), at);
        at += s.byteLength;
      }
      return {
        modelTopology: json.modelTopology, format: json.format, generatedBy: json.generatedBy,
        convertedBy: json.convertedBy, signature: json.signature,
        userDefinedMetadata: json.userDefinedMetadata, weightSpecs: specs,
        weightData: weightData.buffer,
      };
    },
  };
}

async function main() {
  if (process.argv.length !== 3) fail('usage: node run.js JOB.json');
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  await tf.setBackend('cpu');
  const model = await tfconv.loadGraphModel(fileHandler(job.model));
  let previous = {};
  for (const [k, step] of job.steps.entries()) {
    const feeds = {};
    for (const [name, feed] of Object.entries(step.feeds)) {
      if (feed.npy !== undefined) feeds[name] = readNpy(feed.npy);
      else if (feed.scalar !== undefined) feeds[name] = tf.scalar(feed.scalar, 'float32');
      else if (feed.previous !== undefined) {
        if (!previous[feed.previous]) fail(`step ${k}: no output ${feed.previous} before it`);
        feeds[name] = previous[feed.previous];
      } else fail(`step ${k}: feed ${name} has no npy, scalar or previous`);
    }
    let outs = await model.executeAsync(feeds, step.outputs);
    if (!Array.isArray(outs)) outs = [outs];
    fs.mkdirSync(step.save, { recursive: true });
    const next = {};
    step.outputs.forEach((name, i) => {
      writeNpy(path.join(step.save, `${name.replace(/\//g, '__')}.npy`), outs[i]);
      next[name] = outs[i];
    });
    for (const t of Object.values(feeds)) if (!Object.values(next).includes(t)) t.dispose();
    previous = next;
  }
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
