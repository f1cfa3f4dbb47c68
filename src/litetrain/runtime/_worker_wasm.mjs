// The worker process of WasmRunner: LiteRT.js (WebAssembly, XNNPACK) served over stdin/stdout in Node, speaking the
// worker protocol of _worker_main.py (uint32 little-endian header length, UTF-8 JSON header, then .npy arrays).
//   node _worker_wasm.mjs PACKAGE_DIR     (PACKAGE_DIR: the installed @litertjs/core)
// Commands: load, call, stats, quit. LiteRT.js refuses a buffer of another size for a dynamic-batch input, so a
// model's "infer" is served by its fixed-batch "infer_fixed" when it has one (the runner chunks and pads to it).
// Node has no `self`, `importScripts` or `navigator`; the first lines give LiteRT.js's loader what it expects, and
// everything the wasm module prints goes to stderr: stdout carries only the protocol.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const started = performance.now();
const toStderr = (...args) => process.stderr.write(args.map(String).join(' ') + '\n');
console.log = console.info = console.warn = console.error = console.debug = toStderr;
const pkgDir = process.argv[2];
const wasmDir = path.join(pkgDir, 'wasm');
globalThis.self = globalThis;
globalThis.require = createRequire(import.meta.url);
globalThis.__dirname = wasmDir;
globalThis.importScripts = (url) =>
  vm.runInThisContext(fs.readFileSync(String(url).replace(/^file:\/\//, ''), 'utf8'), { filename: String(url) });

// -- messages ---------------------------------------------------------------------------------------------------
const DTYPES = { '<f4': Float32Array, '<i4': Int32Array, '|u1': Uint8Array, '|i1': Int8Array, '<i8': BigInt64Array };
const DESCR = { float32: '<f4', int32: '<i4', uint8: '|u1', int8: '|i1', int64: '<i8' };

function npyArray(buf) {
  const hlen = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + hlen).toString('latin1');
  const descr = /'descr': '([^']+)'/.exec(header)[1];
  const shape = /'shape': \(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const Type = DTYPES[descr];
  if (!Type) throw new TypeError(`dtype ${descr} is not supported by LiteRT.js`);
  const body = buf.subarray(10 + hlen);
  const copy = new Uint8Array(body.length);
  copy.set(body);
  return { data: new Type(copy.buffer, 0, body.length / Type.BYTES_PER_ELEMENT), shape };
}

function npyBytes(typed, shape, dtype) {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const pad = (64 - ((6 + 4 + header.length + 1) % 64)) % 64;
  header = header + ' '.repeat(pad) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength)]);
}

function encode(header, arrays) {
  const blobs = [];
  const index = [];
  for (const [name, { data, shape, dtype }] of Object.entries(arrays)) {
    const blob = npyBytes(data, shape, dtype);
    blobs.push(blob);
    index.push([name, blob.length]);
  }
  const head = Buffer.from(JSON.stringify({ ...header, arrays: index }), 'utf8');
  const size = Buffer.alloc(4);
  size.writeUInt32LE(head.length, 0);
  return Buffer.concat([size, head, ...blobs]);
}

const send = (header, arrays = {}) => fs.writeSync(1, encode(header, arrays));

let pending = Buffer.alloc(0);
let waiting = null;
let ended = false;
process.stdin.on('data', (chunk) => { pending = Buffer.concat([pending, chunk]); if (waiting) waiting(); });
process.stdin.on('end', () => { ended = true; if (waiting) waiting(); });

async function readExact(n) {
  while (pending.length < n) {
    if (ended) throw new Error('EOF');
    await new Promise((resolve) => { waiting = resolve; });
    waiting = null;
  }
  const out = pending.subarray(0, n);
  pending = pending.subarray(n);
  return Buffer.from(out);
}

async function readMessage() {
  const size = (await readExact(4)).readUInt32LE(0);
  const header = JSON.parse((await readExact(size)).toString('utf8'));
  const arrays = {};
  for (const [name, nbytes] of header.arrays || []) arrays[name] = npyArray(await readExact(nbytes));
  delete header.arrays;
  return { header, arrays };
}

// -- the model --------------------------------------------------------------------------------------------------
let core = null;
let model = null;
let runners = {};
const calls = {};
let loadS = 0;

function detail(d) {
  const sig = Array.from(d.shape);
  return { shape: sig.map((v) => (v < 0 ? 1 : v)), shape_signature: sig, dtype: d.dtype };
}

async function load(header, arrays) {
  const t = performance.now();
  model = await core.loadAndCompile(new Uint8Array(arrays.model.data.buffer), { accelerator: 'wasm' });
  runners = { ...model.signatures };
  if (runners.infer_fixed && runners.infer) runners.infer = runners.infer_fixed;
  const signatures = {};
  for (const [key, runner] of Object.entries(runners)) {
    const ins = Object.fromEntries(runner.getInputDetails().map((d) => [d.name, detail(d)]));
    const outs = Object.fromEntries(runner.getOutputDetails().map((d) => [d.name, detail(d)]));
    signatures[key] = { inputs: ins, outputs: outs };
  }
  loadS = (performance.now() - t) / 1000;
  return [{ signatures }, {}];
}

async function call(header, arrays) {
  const key = header.signature;
  const runner = runners[key];
  if (!runner) throw new Error(`the model has no signature '${key}'`);
  const inputs = {};
  for (const d of runner.getInputDetails()) {
    const a = arrays[d.name];
    if (!a) throw new Error(`missing input '${d.name}'`);
    inputs[d.name] = new core.Tensor(a.data, a.shape.length ? a.shape : [1]);
  }
  const t = performance.now();
  const outs = await runner.run(inputs);
  const stat = calls[key] || (calls[key] = [0, 0]);
  stat[0] += 1;
  stat[1] += (performance.now() - t) / 1000;
  for (const tensor of Object.values(inputs)) tensor.delete();
  const details = Object.fromEntries(runner.getOutputDetails().map((d) => [d.name, d]));
  const result = {};
  for (const [name, tensor] of Object.entries(outs)) {
    const data = tensor.toTypedArray().slice();
    const shape = Array.from(details[name].shape);
    tensor.delete();
    result[name] = { data, shape, dtype: details[name].dtype };
  }
  return [{}, result];
}

function stats() {
  const usage = process.resourceUsage();
  return [{
    peak_rss_bytes: usage.maxRSS * 1024, ru_maxrss_bytes: usage.maxRSS * 1024,
    cpu_s: (usage.userCPUTime + usage.systemCPUTime) / 1e6, load_s: loadS,
    calls: Object.fromEntries(Object.entries(calls).map(([k, [c, s]]) => [k, { count: c, seconds: s }])),
    modules: ['node', '@litertjs/core'],
  }, {}];
}

async function main() {
  const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
  try {
    core = await import(pathToFileURL(path.join(pkgDir, 'dist', 'index.js')).href);
    await core.loadLiteRt(wasmDir + '/');
  } catch (e) {
    send({ ok: false, error: 'ImportError', message: `LiteRT.js did not load: ${e.message ?? e}` });
    process.exit(3);
  }
  send({
    ok: true, pid: process.pid, python: `node ${process.versions.node}`, executable: process.execPath,
    numpy: '-', interpreter: 'litertjs', interpreter_version: version, startup_s: (performance.now() - started) / 1000,
  });
  const commands = { load, call, stats };
  for (;;) {
    let message;
    try {
      message = await readMessage();
    } catch {
      process.exit(0);
    }
    const { header, arrays } = message;
    if (header.cmd === 'quit') {
      send({ ok: true });
      process.exit(0);
    }
    try {
      if (!commands[header.cmd]) throw new Error(`unknown command '${header.cmd}'`);
      const [reply, replyArrays] = await commands[header.cmd](header, arrays);
      send({ ...reply, ok: true }, replyArrays);
    } catch (e) {
      send({ ok: false, error: e.name || 'Error', message: String(e.message ?? e) });
    }
  }
}

main();
