import { defineConfig } from 'vite';

/**
 * The web client. `npm run build:web` writes web/dist (served by the service at `/`); `npm run dev` serves it with
 * hot reload on http://localhost:5173 and proxies the API and the socket to a running service (SERVICE_URL,
 * default http://127.0.0.1:8000).
 */
const service = process.env.SERVICE_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
  root: import.meta.dirname,
  // Preact's JSX through Vite's own transformer (Oxc): no Babel preset needed.
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The service serves dist/assets with immutable caching: every name there carries a content hash.
    assetsDir: 'assets',
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      '/api': {
        target: service,
        changeOrigin: true,
        // Without users the service refuses state-changing requests from other origins (cross-site forgery): the
        // dev page speaks as the service here too.
        configure: (proxy) => proxy.on('proxyReq', (req) => req.setHeader('origin', service)),
      },
      '/ws': {
        target: service,
        ws: true,
        changeOrigin: true,
        // The service only accepts sockets from its own origin (or CORS_ORIGINS): the dev page speaks as the service.
        configure: (proxy) => proxy.on('proxyReqWs', (req) => req.setHeader('origin', service)),
      },
    },
  },
});
