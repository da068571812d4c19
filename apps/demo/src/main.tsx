import { TopGunProvider } from '@topgun/react';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import { client } from './client.js';
import './styles.css';

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <TopGunProvider client={client}>
      <App />
    </TopGunProvider>
  </StrictMode>,
);

// The offline app shell, for production builds (the dev server changes files constantly).
if (import.meta.env.PROD && 'serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch((error: unknown) => {
    console.warn('service worker registration failed', error);
  });
}
