import { defineConfig } from '@playwright/test';

// The browser suite runs against a running stack (nginx + gateway + services), by default the
// one `make up` starts. Debian's chromium is used: no browser is downloaded here, ever.
const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

export default defineConfig({
  testDir: './e2e',
  // The journey is one story told in order; two cores do not gain from parallel browsers.
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 180_000,
  expect: { timeout: 20_000 },
  reporter: [['list']],
  // Playwright empties its outputDir at start; screenshots live beside it in test-results/screenshots.
  outputDir: 'test-results/playwright',
  use: {
    baseURL: process.env.BASE_URL || 'http://localhost:30001',
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      args: chromiumArgs,
    },
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
  },
});
