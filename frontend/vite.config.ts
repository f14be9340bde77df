import { loadEnv } from 'vite';
import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';
import tailwindcss from '@tailwindcss/vite';

// `npm run dev` proxies /api to a running gateway, stripping the prefix exactly as
// nginx does in production. GATEWAY_URL overrides the target (default: the gateway's port).
export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, '.', '');
  const gateway = env.GATEWAY_URL || 'http://127.0.0.1:8080';
  const proxy = {
    '/api': {
      target: gateway,
      changeOrigin: true,
      rewrite: (path: string) => path.replace(/^\/api/, ''),
    },
  };
  return {
    plugins: [react(), tailwindcss()],
    server: { port: 5173, proxy },
    preview: { port: 4173, proxy },
    build: { sourcemap: false, assetsDir: 'assets' },
    test: {
      environment: 'jsdom',
      globals: false,
      setupFiles: ['./src/test/setup.ts'],
      include: ['src/**/*.test.{ts,tsx}'],
      restoreMocks: true,
      // Two shared cores, often busy compiling Rust: generous limits, never a reason to fail.
      testTimeout: 30_000,
    },
  };
});
