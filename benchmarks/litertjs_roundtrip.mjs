// Runs every signature of a litetrain model in LiteRT.js (WebAssembly, Node): train on the batches in DATA_DIR,
// save twice, restore into a fresh compiled model, infer_fixed, and infer with a dynamic batch (expected to fail);
// writes JSON. Driven by benchmarks/litertjs_roundtrip.py, which compares it with the Interpreter.
//   node litertjs_roundtrip.mjs CACHE/wasm MODEL.tflite DATA_DIR OUT.json
// Node has no `self`, `importScripts` or `navigator`: the first lines give LiteRT.js's loader what it expects.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [pkgDir, modelPath, dataDir, outPath] = process.argv.slice(2);
const wasmDir = path.join(pkgDir, 'node_modules/@litertjs/core/wasm');
globalThis.self = globalThis;
globalThis.require = createRequire(import.meta.url);
globalThis.__dirname = wasmDir;
globalThis.importScripts = (url) => vm.runInThisContext(fs.readFileSync(url.replace(/^file:\/\//, ''), 'utf8'), { filename: url });
const core = await import(pathToFileURL(path.join(pkgDir, 'node_modules/@litertjs/core/dist/index.js')).href);
const { loadLiteRt, loadAndCompile, Tensor } = core;
await loadLiteRt(wasmDir + '/');
const bytes = new Uint8Array(fs.readFileSync(modelPath));
const f32 = (name) => { const b = fs.readFileSync(path.join(dataDir, name)); return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
const xs = f32('xs.bin'), ys = f32('ys.bin'), xt = f32('xt.bin');
const B = 32, X = 28 * 28, C = 10, steps = xs.length / (B * X);
const model = await loadAndCompile(bytes, { accelerator: 'wasm' });
const sigs = model.signatures;
const plain = (outs) => Object.fromEntries(Object.entries(outs).map(([k, t]) => { const a = Array.from(t.toTypedArray()); t.delete(); return [k, a]; }));
const losses = [];
const t0 = performance.now();
for (let s = 0; s < steps; s++) {
  const x = new Tensor(xs.slice(s * B * X, (s + 1) * B * X), [B, 28, 28]);
  const y = new Tensor(ys.slice(s * B * C, (s + 1) * B * C), [B, C]);
  const out = await sigs.train.run({ x, y });
  losses.push(out.loss.toTypedArray()[0]); out.loss.delete(); x.delete(); y.delete();
}
const sps = steps / ((performance.now() - t0) / 1000);
const s1 = plain(await sigs.save.run({})), s2 = plain(await sigs.save.run({}));
const fresh = await loadAndCompile(bytes, { accelerator: 'wasm' });
const details = fresh.signatures.restore.getInputDetails();
const restoreIn = {};
for (const d of details) {
  const arr = s1[d.name];
  restoreIn[d.name] = new Tensor(d.dtype === 'int32' ? Int32Array.from(arr) : Float32Array.from(arr), d.shape);
}
plain(await fresh.signatures.restore.run(restoreIn));
const s3 = plain(await fresh.signatures.save.run({}));
const xtT = new Tensor(xt.slice(0, B * X), [B, 28, 28]);
const oFixed = plain(await fresh.signatures.infer_fixed.run({ x: xtT }));
let dynErr = null;
try { plain(await fresh.signatures.infer.run({ x: new Tensor(xt.slice(0, 5 * X), [5, 28, 28]) })); } catch (e) { dynErr = String(e.message ?? e); }
fs.writeFileSync(outPath, JSON.stringify({ losses, sps, s1, s2, s3, o_fixed: oFixed.output, dynErr }));
console.log('wasm steps/s', sps.toFixed(1), 'losses', losses.slice(0, 3), 'dyn infer error:', dynErr);
process.exit(0);
