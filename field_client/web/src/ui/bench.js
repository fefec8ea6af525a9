// Measuring hooks for benchmarks/field_app.py, present only when the page is opened with ?bench: the same
// streaming SHA-256 (hash-wasm) and per-chunk AES-GCM the capture uses, on a file the benchmark hands the page.
// They touch no stored data.
import { createSHA256 } from 'hash-wasm';

import { CHUNK_SIZE } from '../lib/evidence.js';

async function eachChunk(file, visit) {
  for (let start = 0; start < file.size; start += CHUNK_SIZE) {
    // eslint-disable-next-line no-await-in-loop
    await visit(new Uint8Array(await file.slice(start, Math.min(file.size, start + CHUNK_SIZE)).arrayBuffer()));
  }
}

function heap() {
  return performance.memory ? performance.memory.usedJSHeapSize : null;
}

export function installBench() {
  if (!new URLSearchParams(window.location.search).has('bench')) return;
  window.__fieldBench = {
    async sha256(file) {
      const before = heap();
      const started = performance.now();
      let peak = before;
      const hasher = await createSHA256();
      hasher.init();
      await eachChunk(file, (bytes) => { hasher.update(bytes); peak = Math.max(peak ?? 0, heap() ?? 0); });
      const ms = performance.now() - started;
      const hex = hasher.digest('hex');
      // What the page still holds once the garbage of the 1 MiB slices is collected (with --js-flags=--expose-gc).
      if (typeof globalThis.gc === 'function') globalThis.gc();
      return { hex, ms, heapBefore: before, heapPeak: peak, heapAfter: heap() };
    },
    async encrypt(file) {
      const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt']);
      const started = performance.now();
      let out = 0;
      await eachChunk(file, async (bytes) => {
        const iv = crypto.getRandomValues(new Uint8Array(12));
        out += (await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, bytes)).byteLength;
      });
      return { bytes: out, ms: performance.now() - started };
    },
  };
}
