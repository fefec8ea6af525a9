// The inspection code checker's service worker (issue 18), served at /public/code-sw.js with the scope
// /public/c/ (the server sends Service-Worker-Allowed for it).
//
// It keeps one cache: the offline checker page, and every stylesheet and script that page names, and the public
// keys. A navigation under /public/c/ goes to the network as usual; only when the network fails (or gives no
// answer in NAVIGATION_TIMEOUT_MS) does the worker answer the offline checker page, which checks the token of
// the address in the browser. While online, the cache is refreshed now and then, so new keys and a new page reach
// the phone without a new worker. Nothing here caches a code page itself: the online answer is never stale.
/* global __CHECK_VERSION__ */
const VERSION = __CHECK_VERSION__;
const PREFIX = 'inspection-code-check-';
const CACHE = `${PREFIX}${VERSION}`;
const SCOPE = new URL('c/', self.location).pathname; // /public/c/
const OFFLINE_PAGE = new URL('code-offline.html', self.location).href;
const KEYS = new URL('code-keys.json', self.location).href;
const NAVIGATION_TIMEOUT_MS = 10_000;
const REFRESH_EVERY_MS = 10 * 60 * 1000;
let refreshedAt = 0;

/** Same-origin stylesheets and scripts the offline page names (and the keys URL its script is given). */
function subresources(html) {
  const urls = new Set([KEYS]);
  const tags = html.match(/<(?:link|script)\b[^>]*>/gi) ?? [];
  for (const tag of tags) {
    if (/^<link/i.test(tag) && !/\brel=["']?stylesheet/i.test(tag)) continue;
    const found = tag.match(/\b(?:href|src)=["']([^"']+)["']/i);
    if (!found) continue;
    const url = new URL(found[1].replaceAll('&amp;', '&'), OFFLINE_PAGE);
    if (url.origin === self.location.origin) urls.add(url.href);
  }
  return [...urls];
}

async function fill() {
  const page = await fetch(OFFLINE_PAGE, { cache: 'no-store', credentials: 'omit' });
  if (!page.ok) throw new Error(`offline page: HTTP ${page.status}`);
  const cache = await caches.open(CACHE);
  await cache.addAll(subresources(await page.clone().text()).map((url) => new Request(url, { cache: 'no-store' })));
  await cache.put(OFFLINE_PAGE, page);
  refreshedAt = Date.now();
}

self.addEventListener('install', (event) => {
  event.waitUntil(fill().then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

async function offlinePage() {
  const cache = await caches.open(CACHE);
  return (await cache.match(OFFLINE_PAGE, { ignoreVary: true })) ?? Response.error();
}

async function navigate(event) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), NAVIGATION_TIMEOUT_MS);
  try {
    const response = await fetch(event.request, { signal: controller.signal });
    if (Date.now() - refreshedAt > REFRESH_EVERY_MS) event.waitUntil(fill().catch(() => {}));
    return response;
  } catch {
    return offlinePage();
  } finally {
    clearTimeout(timer);
  }
}

/** What the offline page loads: the network first (fresh when online), the cache when it fails. */
async function cachedOrNetwork(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request, { ignoreVary: true });
  if (!cached) return fetch(request);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch {
    return cached;
  }
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate' && url.pathname.startsWith(SCOPE)) {
    event.respondWith(navigate(event));
  } else if (request.mode !== 'navigate') {
    event.respondWith(cachedOrNetwork(request));
  }
});
