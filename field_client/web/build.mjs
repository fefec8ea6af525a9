// Builds the tablet app into dist/ (served by the server at /field/): esbuild bundles src/main.js and its CSS
// under content-hashed names, index.html gets those names, public/ is copied, the icons are drawn, and the
// service worker (src/sw.js, bundled with Workbox) gets the precache manifest of everything above.
//
//   node build.mjs                      -> dist/
//   node build.mjs --outdir DIR         -> DIR (tests build a second version beside the first)
//   node build.mjs --label TEXT         -> a build label shown in the app (tests deploy "version N+1")
//
// The same build writes dist/public-check/: the inspection code page's script and its service worker (the
// offline checker, src/public-check/), which the server serves at /public/code-check.js and /public/code-sw.js.
//
// Nothing outside the output folder is written. The output is built beside it and swapped in at the end, so a
// server reading dist/ never sees half a build.
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';

import * as esbuild from 'esbuild';
import { injectManifest } from 'workbox-build';

const root = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: { outdir: { type: 'string' }, label: { type: 'string' } },
});
const outdir = path.resolve(args.outdir ?? path.join(root, 'dist'));
const staging = `${outdir}.building-${process.pid}`;
const pkg = JSON.parse(await fs.readFile(path.join(root, 'package.json'), 'utf8'));

// ---- icons: drawn here (a seal-red rounded square, a white shield with a tick), no image files to fetch -------

function crc32(bytes) {
  let c;
  let crc = 0xffffffff;
  for (const b of bytes) {
    c = (crc ^ b) & 0xff;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crc = (crc >>> 8) ^ c;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function encodePng(size, pixel) {
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y += 1) {
    const row = y * (size * 4 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < size; x += 1) {
      // 4x4 supersampling: smooth edges without a drawing library.
      const acc = [0, 0, 0, 0];
      for (let sy = 0; sy < 4; sy += 1) {
        for (let sx = 0; sx < 4; sx += 1) {
          const p = pixel((x + (sx + 0.5) / 4) / size, (y + (sy + 0.5) / 4) / size);
          for (let i = 0; i < 4; i += 1) acc[i] += p[i] * (i === 3 ? 1 : p[3]);
        }
      }
      const alpha = acc[3] / 16;
      const offset = row + 1 + x * 4;
      for (let i = 0; i < 3; i += 1) raw[offset + i] = alpha ? Math.round(acc[i] / acc[3]) : 0;
      raw[offset + 3] = Math.round(alpha);
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', zlib.deflateSync(raw, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function segmentDistance(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

// `inset` shrinks the drawing for maskable icons, whose outer 10% may be cut by the launcher's mask.
function iconPixel(maskable) {
  const red = [178, 34, 34, 255];
  const white = [255, 255, 255, 255];
  const clear = [0, 0, 0, 0];
  return (u, v) => {
    if (!maskable) {
      const r = 0.18; // rounded square
      const qx = Math.max(Math.abs(u - 0.5) - (0.5 - r), 0);
      const qy = Math.max(Math.abs(v - 0.5) - (0.5 - r), 0);
      if (Math.hypot(qx, qy) > r) return clear;
    }
    const scale = maskable ? 0.72 : 0.86;
    const x = (u - 0.5) / scale + 0.5;
    const y = (v - 0.5) / scale + 0.5;
    // Shield: a box on top, a point below.
    const inShield = x > 0.24 && x < 0.76 && y > 0.2 && (y < 0.5 || Math.abs(x - 0.5) < 0.26 * (1 - (y - 0.5) / 0.32));
    if (!inShield) return red;
    const tick = Math.min(segmentDistance(x, y, 0.36, 0.47, 0.46, 0.58), segmentDistance(x, y, 0.46, 0.58, 0.65, 0.36));
    return tick < 0.045 ? red : white;
  };
}

async function drawIcons(dir) {
  await fs.mkdir(path.join(dir, 'icons'), { recursive: true });
  const icons = [
    ['icon-192.png', 192, false],
    ['icon-512.png', 512, false],
    ['maskable-512.png', 512, true],
    ['apple-touch-icon.png', 180, true],
  ];
  for (const [name, size, maskable] of icons) {
    await fs.writeFile(path.join(dir, 'icons', name), encodePng(size, iconPixel(maskable)));
  }
}

// ---- the inspection code's offline checker: one page script, one service worker -------------------------------

async function buildPublicCheck(dir) {
  const out = path.join(dir, 'public-check');
  const common = {
    absWorkingDir: root, bundle: true, format: 'iife', target: ['chrome100', 'safari16', 'firefox110'], minify: true,
    logLevel: 'warning',
  };
  await esbuild.build({ ...common, entryPoints: ['src/public-check/main.js'], outfile: path.join(out, 'code-check.js') });
  // The worker's version is the content of what it caches from this build: a new script installs a new worker.
  const version = createHash('sha256')
    .update(await fs.readFile(path.join(out, 'code-check.js')))
    .update(await fs.readFile(path.join(root, 'src/public-check/sw.js')))
    .digest('hex').slice(0, 12);
  await esbuild.build({
    ...common, entryPoints: ['src/public-check/sw.js'], outfile: path.join(out, 'code-sw.js'),
    define: { __CHECK_VERSION__: JSON.stringify(version) },
  });
}

// ---- the build -----------------------------------------------------------------------------------------------

async function build() {
  await fs.rm(staging, { recursive: true, force: true });
  await fs.mkdir(staging, { recursive: true });
  await fs.cp(path.join(root, 'public'), staging, { recursive: true });
  await drawIcons(staging);
  await buildPublicCheck(staging);

  const bundle = await esbuild.build({
    absWorkingDir: root,
    entryPoints: ['src/main.js'],
    bundle: true,
    format: 'esm',
    target: ['chrome100', 'safari16', 'firefox110'],
    minify: true,
    sourcemap: 'linked',
    outdir: path.join(staging, 'assets'),
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    metafile: true,
    define: { __APP_LABEL__: JSON.stringify(args.label ?? '') },
    legalComments: 'linked',
    logLevel: 'warning',
  });
  const outputs = Object.entries(bundle.metafile.outputs);
  const relative = (file) => path.relative(staging, path.resolve(root, file)).split(path.sep).join('/');
  const mainJs = outputs.find(([file, meta]) => meta.entryPoint === 'src/main.js' && file.endsWith('.js'));
  const mainCss = mainJs[1].cssBundle;

  // The version the app shows and the service worker reports: the content of the app bundle, so a
  // redeployment of the same sources keeps the installed service worker, and any change replaces it.
  const digest = createHash('sha256');
  for (const [file] of [...outputs].sort()) digest.update(await fs.readFile(path.resolve(root, file)));
  const version = `${pkg.version}+${digest.digest('hex').slice(0, 10)}`;
  const label = args.label ?? '';

  let html = await fs.readFile(path.join(root, 'index.html'), 'utf8');
  html = html
    .replace('%MAIN_JS%', relative(mainJs[0]))
    .replace('%MAIN_CSS%', mainCss ? relative(mainCss) : '')
    .replaceAll('%APP_VERSION%', version);
  await fs.writeFile(path.join(staging, 'index.html'), html);
  await fs.writeFile(path.join(staging, 'version.json'),
    `${JSON.stringify({ version, label, name: pkg.name }, null, 2)}\n`);

  const swSource = path.join(staging, 'sw.src.js');
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: ['src/sw.js'],
    bundle: true,
    format: 'iife',
    target: ['chrome100', 'safari16', 'firefox110'],
    minify: true,
    outfile: swSource,
    define: { __APP_VERSION__: JSON.stringify(version), __APP_LABEL__: JSON.stringify(label) },
    logLevel: 'warning',
  });
  const { count, size, warnings } = await injectManifest({
    swSrc: swSource,
    swDest: path.join(staging, 'sw.js'),
    globDirectory: staging,
    globPatterns: ['index.html', 'manifest.webmanifest', 'version.json', 'assets/*.{js,css}', 'icons/*.png'],
    // Hashed names never change content: Workbox need not add its own revision to them.
    dontCacheBustURLsMatching: /^assets\/.+-[A-Z0-9]{8}\.(js|css)$/,
    maximumFileSizeToCacheInBytes: 8 * 1024 * 1024,
  });
  for (const warning of warnings) console.warn(`workbox: ${warning}`);
  await fs.rm(swSource);

  // Swap the finished build in.
  const previous = `${outdir}.previous-${process.pid}`;
  await fs.rm(previous, { recursive: true, force: true });
  let hadPrevious = true;
  try {
    await fs.rename(outdir, previous);
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
    hadPrevious = false;
  }
  await fs.rename(staging, outdir);
  if (hadPrevious) await fs.rm(previous, { recursive: true, force: true });
  console.log(`built ${path.relative(process.cwd(), outdir) || outdir} (version ${version}${label ? `, ${label}` : ''}): `
    + `${count} precached files, ${(size / 1024).toFixed(0)} KiB`);
}

try {
  await build();
} catch (error) {
  await fs.rm(staging, { recursive: true, force: true });
  console.error(error.message ?? error);
  process.exit(1);
}
