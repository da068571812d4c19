import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// In development the sync server runs on its own port, on 127.0.0.1 (anonymous mode listens on
// this machine only); the app talks to `/sync` on its own origin either way (in production the
// server serves the built app itself).
const server = process.env['TOPGUN_SERVER'] ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      '/sync': { target: server.replace(/^http/, 'ws'), ws: true },
      '/health': server,
      '/ready': server,
    },
  },
  build: { sourcemap: true },
});
