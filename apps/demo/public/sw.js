// Offline app shell: the built app is cached when the service worker installs (the page and
// every asset it references) and refreshed on each visit; with no network, navigations get
// the cached page and the data comes from the local replica in IndexedDB.
const CACHE = 'topgun-demo-v1';

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      const response = await fetch('/', { cache: 'no-store' });
      const html = await response.clone().text();
      await cache.put('/', response);
      const assets = [...html.matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((match) => match[1]);
      await cache.addAll(assets.filter((asset) => !asset.startsWith('/sync')));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (['/sync', '/health', '/ready', '/metrics'].includes(url.pathname)) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(request);
        if (response.ok)
          await cache.put(request.mode === 'navigate' ? '/' : request, response.clone());
        return response;
      } catch (error) {
        const cached = await cache.match(request.mode === 'navigate' ? '/' : request);
        if (cached) return cached;
        throw error;
      }
    })(),
  );
});
