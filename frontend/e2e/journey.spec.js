// The whole user journey in a real browser against the running stack: register, log out,
// a wrong password, log in, upload a video made now, watch it convert live, download the MP3,
// find it in the history, delete it.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { PASSWORD, expect, nav, logIn, makeVideo, probe, snap, test, uniqueEmail } from './fixtures.js';

test.describe.configure({ mode: 'serial' });

const email = uniqueEmail('journey');
const stem = `tone-${Date.now().toString(36)}`;
let video;

test.beforeAll(() => {
  video = makeVideo(stem);
});

test('register a new account', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
  await page.getByRole('link', { name: 'Create one' }).click();
  await expect(page.getByRole('heading', { name: 'Create an account' })).toBeVisible();

  // A short password is refused in words before any request.
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('alert')).toHaveText('The password must be at least 8 characters long.');

  await page.getByLabel('Password').fill(PASSWORD);
  await snap(page, 'register-page');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('heading', { name: 'Convert a video to MP3' })).toBeVisible();
  await expect(page.getByText(email)).toBeVisible();

  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
  await expect(page.getByRole('status')).toHaveText('You have been logged out.');
});

test('registering the same email again says it exists', async ({ page }) => {
  await page.goto('/register');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('alert')).toContainText('An account with this email already exists.');
});

test('a wrong password shows an error', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong email or password.');
  await expect(page).toHaveURL(/\/login$/);
  await snap(page, 'login-page-wrong-password');
});

test('log in, convert a video with live progress, download the MP3', async ({ page }) => {
  const events = [];
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/api/events') {
      events.push({ status: response.status(), type: response.headers()['content-type'] || '' });
    }
  });

  await page.goto('/login');
  await snap(page, 'login-page');
  await logIn(page, email);
  await snap(page, 'convert-page-empty');

  // The picker refuses what is not an MP4.
  await page.getByLabel('Choose an MP4 video').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  await expect(page.getByRole('alert')).toContainText('is not an MP4 video');

  await page.getByLabel('Choose an MP4 video').setInputFiles(video);
  await expect(page.getByText(`${stem}.mp4`)).toBeVisible();
  await page.getByLabel(/MP3 quality/).selectOption('cbr:192');

  // Slow the browser's uploads down (Chrome's network emulation) so the progress bar can be seen.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 8 * 1024 });
  await page.getByRole('button', { name: 'Upload and convert' }).click();
  const uploadBar = page.getByRole('progressbar', { name: 'Upload' });
  await expect(uploadBar).toHaveAttribute('aria-valuetext', /^\d+% · [\d.]+ KB of [\d.]+ KB · [\d.]+ (B|KB)\/s$/);
  await expect(page.getByRole('button', { name: 'Cancel upload' })).toBeVisible();
  await snap(page, 'convert-page', { docs: true });
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

  const download = page.getByRole('button', { name: `Download ${stem}.mp3` });
  await expect(download).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('job-state')).toHaveText('Done');
  await snap(page, 'convert-page-done');

  // Live status came over Server-Sent Events through nginx.
  expect(events.length).toBeGreaterThan(0);
  expect(events[0]).toEqual({ status: 200, type: expect.stringContaining('text/event-stream') });

  const [file] = await Promise.all([page.waitForEvent('download'), download.click()]);
  expect(file.suggestedFilename()).toBe(`${stem}.mp3`);
  const saved = path.join(test.info().outputDir, file.suggestedFilename());
  await file.saveAs(saved);
  const size = statSync(saved).size;
  // 3 s at 192 kb/s is ~72 KB; allow for the encoder's padding and tags.
  expect(size).toBeGreaterThan(40_000);
  expect(size).toBeLessThan(200_000);
  const head = readFileSync(saved).subarray(0, 3);
  const isId3 = head.toString('latin1') === 'ID3';
  const isFrameSync = head[0] === 0xff && (head[1] & 0xe0) === 0xe0;
  expect(isId3 || isFrameSync, 'the file starts like an MP3').toBe(true);
  const info = probe(saved);
  expect(info.format).toBe('mp3');
  expect(info.codecs).toContain('audio:mp3');
  expect(info.duration).toBeGreaterThan(2.5);
  expect(info.duration).toBeLessThan(3.6);
});

test('the conversion is in the history; delete it', async ({ page }) => {
  await logIn(page, email);
  await nav(page, 'History').click();
  await expect(page.getByRole('heading', { name: 'History' })).toBeVisible();
  const row = page.getByTestId('job-row').filter({ hasText: `${stem}.mp4` });
  await expect(row).toHaveCount(1);
  await expect(row.getByText('Done')).toBeVisible();
  await expect(row.getByRole('button', { name: `Download ${stem}.mp3` })).toBeVisible();
  await snap(page, 'history-page');

  // Phone-sized views of the two main pages.
  await page.setViewportSize({ width: 390, height: 844 });
  await snap(page, 'history-page-phone');
  await nav(page, 'Convert').click();
  await snap(page, 'convert-page-phone');
  await nav(page, 'History').click();
  await page.setViewportSize({ width: 1280, height: 800 });

  await row.getByRole('button', { name: `Delete ${stem}.mp4` }).click();
  await row.getByRole('button', { name: `Confirm delete ${stem}.mp4` }).click();
  await expect(page.getByRole('status')).toHaveText(`Deleted ${stem}.mp4.`);
  await expect(page.getByTestId('job-row').filter({ hasText: `${stem}.mp4` })).toHaveCount(0);
  await page.reload();
  await expect(page.getByRole('heading', { name: 'History' })).toBeVisible();
  await expect(page.getByText('No conversions yet.')).toBeVisible();
});

test('the whole journey works with the keyboard alone', async ({ page }) => {
  await page.goto('/login');
  await page.keyboard.press('Tab');
  await expect(page.getByLabel('Email')).toBeFocused();
  await page.keyboard.type(email);
  await page.keyboard.press('Tab');
  await expect(page.getByLabel('Password')).toBeFocused();
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'Convert a video to MP3' })).toBeVisible();

  // Skip link, then the navigation, reachable in order.
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Skip to content' })).toBeFocused();
  await page.keyboard.press('Tab');
  await expect(nav(page, 'Convert')).toBeFocused();
  await page.keyboard.press('Tab');
  await expect(nav(page, 'History')).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('heading', { name: 'History' })).toBeVisible();
});
