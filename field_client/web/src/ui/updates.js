// Service worker registration and updates. A new deployment installs a new worker in the background; the app
// shows a banner and switches when the inspector taps it (or at the next cold start). Local data lives in
// IndexedDB, which neither the worker nor its update touches.

const listeners = new Set();
let waiting = null;

function announce() {
  for (const listener of listeners) listener(waiting);
}

/** Calls `listener(worker|null)` whenever a new version is ready to take over. Returns an unsubscribe. */
export function onUpdateReady(listener) {
  listeners.add(listener);
  listener(waiting);
  return () => listeners.delete(listener);
}

/** Lets the waiting version take over; the page reloads once it controls it. */
export function applyUpdate() {
  if (waiting) waiting.postMessage({ type: 'SKIP_WAITING' });
}

function track(registration) {
  if (registration.waiting && navigator.serviceWorker.controller) {
    waiting = registration.waiting;
    announce();
  }
  registration.addEventListener('updatefound', () => {
    const installing = registration.installing;
    if (!installing) return;
    installing.addEventListener('statechange', () => {
      // Installed while another version controls the page: an update, not the first installation.
      if (installing.state === 'installed' && navigator.serviceWorker.controller) {
        waiting = installing;
        announce();
      }
    });
  });
}

export async function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return null;
  let reloading = false;
  const hadController = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    // Only an update reloads; the first installation claiming the page does not.
    if (!hadController || reloading) return;
    reloading = true;
    window.location.reload();
  });
  try {
    const registration = await navigator.serviceWorker.register('./sw.js', { scope: './' });
    track(registration);
    return registration;
  } catch (error) {
    // Offline with no worker yet, or a browser that refuses: the app still runs, only not offline.
    console.warn('service worker not registered', error);
    return null;
  }
}

/** Resolves once a service worker controls this page (the app shell is then available offline). */
export async function controlled() {
  if (!('serviceWorker' in navigator)) return false;
  await navigator.serviceWorker.ready;
  if (navigator.serviceWorker.controller) return true;
  await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
  return true;
}
