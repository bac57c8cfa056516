// Vite build of the dispatcher console. MapLibre's CSP build is used so that its worker is a
// file served by our own server (the page's Content-Security-Policy forbids blob: scripts).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  base: '/',
  resolve: {
    alias: [{ find: /^maplibre-gl$/, replacement: 'maplibre-gl/dist/maplibre-gl-csp.js' }],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
    assetsInlineLimit: 0,
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
  },
});
