// Shared pieces of the browser suite: a page that fails the test on console errors, unique
// users, a test video made with the ffmpeg CLI, and screenshots saved as artifacts.
import AxeBuilder from '@axe-core/playwright';
import { test as base, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = path.resolve(here, '../test-results/screenshots');
const DOCS_IMAGES = path.resolve(here, '../../docs/images');

/** A fresh address per run, so the suite can run again against the same stack. */
export function uniqueEmail(label) {
  return `e2e-${label}-${Date.now()}-${randomBytes(3).toString('hex')}@example.com`;
}

export const PASSWORD = 'correct horse battery';

/**
 * An MP4 (H.264 + AAC, 440 Hz tone) of `seconds` made now with the ffmpeg CLI; returns its path.
 * Long ones use one video frame per second: only the audio matters to the converter.
 */
export function makeVideo(stem, seconds = 3) {
  const dir = mkdtempSync(path.join(tmpdir(), 'vidconv-e2e-'));
  const file = path.join(dir, `${stem}.mp4`);
  const rate = seconds > 10 ? 1 : 25;
  execFileSync('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`,
    '-f', 'lavfi', '-i', `color=size=160x120:rate=${rate}:duration=${seconds}`,
    '-shortest', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'aac', file,
  ]);
  return file;
}

/** What ffprobe says about an audio file: `{format, codec, duration}`. */
export function probe(file) {
  const out = execFileSync('ffprobe', [
    '-v', 'error', '-show_entries', 'format=format_name,duration:stream=codec_name,codec_type', '-of', 'json', file,
  ]);
  const info = JSON.parse(out.toString());
  return {
    format: info.format.format_name,
    duration: Number(info.format.duration),
    codecs: info.streams.map((s) => `${s.codec_type}:${s.codec_name}`),
  };
}

/** Fails on any WCAG 2.1 A/AA violation axe-core finds on the page as it is now. */
export async function expectAccessible(page) {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const found = results.violations.map((v) => `${v.id} (${v.impact}): ${v.help} -> ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(found, 'accessibility violations').toEqual([]);
}

/**
 * Saves a full-page screenshot as test-results/screenshots/NAME.png (and into docs/images when
 * asked and UPDATE_DOCS_SCREENSHOTS=1, so a test run never edits tracked files), after checking
 * the page with axe-core: every page the suite shows is also checked.
 */
export async function snap(page, name, { docs = false } = {}) {
  await expectAccessible(page);
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (docs && process.env.UPDATE_DOCS_SCREENSHOTS === '1') {
    mkdirSync(DOCS_IMAGES, { recursive: true });
    copyFileSync(file, path.join(DOCS_IMAGES, `${name}.png`));
  }
  return file;
}

/**
 * `page` that fails the test on a JavaScript error or a console error. Chrome's network lines
 * ("Failed to load resource: ... 401") are left out: an expected 401 on a wrong password logs one.
 */
export const test = base.extend({
  page: async ({ page }, use) => {
    const problems = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      if (/^Failed to load resource/.test(message.text())) return;
      problems.push(`console error: ${message.text()}`);
    });
    await use(page);
    expect(problems, 'no console errors').toEqual([]);
  },
});

export { expect };

/** Registers through the API (not the page) and returns the JWT. */
export async function registerByApi(request, email, password = PASSWORD) {
  const auth = `Basic ${Buffer.from(`${email}:${password}`).toString('base64')}`;
  const created = await request.post('/api/register', { headers: { Authorization: auth } });
  // 200 as the original gateway answers (and ours since issue 10); 201 from gateways before that.
  expect([200, 201], await created.text()).toContain(created.status());
  const login = await request.post('/api/login', { headers: { Authorization: auth } });
  expect(login.status()).toBe(200);
  return (await login.text()).trim();
}

/** Logs in through the login page. */
export async function logIn(page, email, password = PASSWORD) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('heading', { name: 'Convert a video to MP3' })).toBeVisible();
}

/** A link of the main navigation (the page text links to History too). */
export function nav(page, name) {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
}
