/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The app is loaded from the Tauri custom protocol (or a test server's root): relative base,
// everything bundled (the CSP allows only 'self' scripts, no inline code, no CDNs).
// Set by vitest; read without Node's types (the config is also type-checked with the app).
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};

export default defineConfig({
  base: "./",
  plugins: [svelte()],
  // Component tests mount Svelte's client runtime, not its server one.
  resolve: env.VITEST ? { conditions: ["browser"] } : undefined,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // Keep the whole app in one module graph: fewer requests, no preload helper at run time.
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1200,
  },
  server: { port: 5173, strictPort: true },
  clearScreen: false,
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts"],
    setupFiles: ["src/test-setup.ts"],
  },
});
