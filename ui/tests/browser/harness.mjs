// Shared by run.mjs and bench.mjs: bundle the mock, serve ui/dist on a loopback port with the
// app's CSP, launch Debian's Chromium through playwright-core, open pages with the mock.
import { createServer } from "node:http";
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const UI = resolve(here, "../..");
export const DIST = join(UI, "dist");
export const ARTIFACTS = join(here, "artifacts");

/**
 * The CSP of tauri.conf.json: the page must work under it (no inline scripts, no eval).
 * STRICT_STYLE=1 also drops inline styles (as when a nonce is added to style-src): the app sets
 * styles only through the CSSOM, so it must still work.
 */
export const CSP =
  `default-src 'self'; script-src 'self'; style-src 'self' ${process.env.STRICT_STYLE ? "'nonce-stepwise-test'" : "'unsafe-inline'"}; img-src 'self' data:; font-src 'self' data:; ` +
  "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".woff2": "font/woff2",
};

/** Bundles tests/browser/mock-entry.ts into one IIFE (with Vite, which the app builds with). */
export async function buildMock() {
  const { build } = await import("vite");
  await mkdir(ARTIFACTS, { recursive: true });
  await build({
    configFile: false,
    logLevel: "warn",
    root: UI,
    build: {
      outDir: ARTIFACTS,
      emptyOutDir: false,
      minify: false,
      copyPublicDir: false,
      lib: { entry: join(here, "mock-entry.ts"), formats: ["iife"], name: "StepwiseMock", fileName: () => "mock.iife.js" },
    },
  });
  return readFile(join(ARTIFACTS, "mock.iife.js"), "utf8");
}

/** Every file of ui/dist, read once: a build running meanwhile (Tauri's) cannot disturb a test run. */
async function snapshotDist() {
  const files = new Map();
  const walk = async (dir, prefix) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path, `${prefix}${entry.name}/`);
      else files.set(`/${prefix}${entry.name}`, await readFile(path));
    }
  };
  await walk(DIST, "");
  return files;
}

/** Serves a snapshot of ui/dist on 127.0.0.1 at a free port, with the app's CSP. */
export async function serveDist() {
  try {
    await stat(join(DIST, "assets"));
  } catch {
    throw new Error(`ui/dist has no build: run \`npm run build\` first (looked in ${DIST})`);
  }
  const files = await snapshotDist();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    let path = decodeURIComponent(url.pathname);
    if (path.endsWith("/")) path += "index.html";
    const body = files.get(path);
    if (!body) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream", "content-security-policy": CSP, "cache-control": "no-store" });
    res.end(body);
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((ok) => server.close(ok)) };
}

export async function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/**
 * A fresh page of the app at `hash` with the mock installed (after freezing Object.prototype,
 * as the app's Tauri config does). Collects console errors, page errors and CSP violations.
 */
export async function openApp(browser, baseUrl, mockSource, { config = {}, hash = "#/runs", colorScheme = "light", viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  await page.addInitScript(() => Object.freeze(Object.prototype));
  await page.addInitScript((c) => {
    window.__STEPWISE_MOCK_CONFIG__ = c;
    document.addEventListener("securitypolicyviolation", (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  }, config);
  await page.addInitScript({ content: mockSource });
  await page.goto(`${baseUrl}${hash}`);
  return { page, context, problems };
}

/** Waits two frames, so that what was rendered is painted (before screenshots). */
export async function painted(page) {
  await page.evaluate(() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => ok()))));
}
