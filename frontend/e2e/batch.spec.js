// A batch in a real browser against the running stack: three files picked at once, one of them a
// text file named .mp4. The two videos upload and convert, each with its own bars, and download
// as real MP3s; the broken one fails with a reason and stops nothing.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, logIn, makeVideo, probe, registerByApi, snap, test, uniqueEmail } from './fixtures.js';

test('a batch of three with one broken file: two MP3s to download, one clear failure', async ({ page, request }) => {
  const email = uniqueEmail('batch');
  await registerByApi(request, email);
  const run = Date.now().toString(36);
  const first = makeVideo(`batch-one-${run}`, 3);
  const second = makeVideo(`batch-two-${run}`, 2);
  const broken = path.join(mkdtempSync(path.join(tmpdir(), 'vidconv-e2e-')), `batch-broken-${run}.mp4`);
  writeFileSync(broken, 'this is a text file, not a video\n'.repeat(200));
  const uploads = [];
  page.on('request', (req) => {
    if (new URL(req.url()).pathname === '/api/upload') uploads.push(req.url());
  });

  await logIn(page, email);
  // The broken file in the middle: the one after it must still go.
  await page.getByLabel('Choose an MP4 video').setInputFiles([first, broken, second]);
  await expect(page.getByText('Selected: 3 videos')).toBeVisible();
  await page.getByRole('button', { name: 'Upload and convert 3 videos' }).click();

  const item = (file) => page.getByRole('region', { name: path.basename(file) });
  const downloadOf = (file) => page.getByRole('button', { name: `Download ${path.basename(file, '.mp4')}.mp3` });
  await expect(downloadOf(first)).toBeVisible({ timeout: 120_000 });
  await expect(downloadOf(second)).toBeVisible({ timeout: 120_000 });
  // Refused at upload (a gateway that sniffs the content) or failed by the converter: either
  // way a sentence on that file, nothing to download.
  const failure = item(broken).getByRole('alert');
  await expect(failure).toBeVisible({ timeout: 120_000 });
  await expect(failure).toContainText(/failed: .{10,}/);
  await expect(item(broken).getByRole('button', { name: /^Download/ })).toHaveCount(0);
  await expect(page.getByRole('status').filter({ hasText: 'uploaded' })).toContainText(/of 3 videos uploaded/);
  expect(uploads).toHaveLength(3);
  await snap(page, 'convert-page-batch');

  for (const [video, seconds] of [
    [first, 3],
    [second, 2],
  ]) {
    const [file] = await Promise.all([page.waitForEvent('download'), downloadOf(video).click()]);
    expect(file.suggestedFilename()).toBe(`${path.basename(video, '.mp4')}.mp3`);
    const saved = path.join(test.info().outputDir, file.suggestedFilename());
    await file.saveAs(saved);
    const info = probe(saved);
    expect(info.format).toBe('mp3');
    expect(info.codecs).toContain('audio:mp3');
    expect(Math.abs(info.duration - seconds)).toBeLessThan(0.6);
  }

  await page.getByRole('button', { name: 'Convert more videos' }).click();
  await expect(page.getByRole('button', { name: 'Upload and convert' })).toBeDisabled();
});
