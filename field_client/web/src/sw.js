// The app's service worker (scope /field/): it precaches the app shell so the app opens with no network, and
// nothing else. API calls (/api/...) are never answered from a cache: the app keeps its own, encrypted data in
// IndexedDB, and a cached answer of the server would be stale or someone else's.
import { clientsClaim } from 'workbox-core';
import { cleanupOutdatedCaches, createHandlerBoundToURL, precacheAndRoute } from 'workbox-precaching';
import { NavigationRoute, registerRoute } from 'workbox-routing';

/* global __APP_VERSION__, __APP_LABEL__ */
const VERSION = __APP_VERSION__;
const LABEL = __APP_LABEL__;

// Replaced by the build (workbox-build injectManifest) with the list of files and their revisions. A new
// deployment changes the list, which makes the browser install this worker anew; IndexedDB is not touched.
precacheAndRoute(self.__WB_MANIFEST);
cleanupOutdatedCaches();

// Any page under /field/ opens the app shell (the app routes with the URL's fragment).
registerRoute(new NavigationRoute(createHandlerBoundToURL('index.html'), {
  allowlist: [/^\/field\//],
  denylist: [/^\/api\//, /\/sw\.js$/],
}));

// The first installation takes the open page at once; an update waits until the inspector agrees (a banner in
// the app) or every tab of the app is closed, so a page is never switched under an inspector's fingers.
clientsClaim();

self.addEventListener('message', (event) => {
  const data = event.data || {};
  if (data.type === 'SKIP_WAITING') self.skipWaiting();
  if (data.type === 'VERSION' && event.ports && event.ports[0]) {
    event.ports[0].postMessage({ version: VERSION, label: LABEL });
  }
});
