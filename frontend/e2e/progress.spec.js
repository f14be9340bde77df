// Live conversion progress: a video long enough that the converter reports progress between
// "queued" and "done", and the page shows it as it happens.
import path from 'node:path';
import { expect, logIn, makeVideo, nav, registerByApi, snap, test, uniqueEmail } from './fixtures.js';

test('the convert page shows the conversion progress live', async ({ page, request }) => {
  const email = uniqueEmail('progress');
  const token = await registerByApi(request, email);
  // 20 minutes of audio: long enough to be converting for a while at ~100x realtime.
  const video = makeVideo(`lecture-${Date.now().toString(36)}`, 20 * 60);
  const stem = path.basename(video, '.mp4');

  await logIn(page, email);
  await page.getByLabel('Choose an MP4 video').setInputFiles(video);
  await page.getByRole('button', { name: 'Upload and convert' }).click();

  const bar = page.getByRole('progressbar', { name: 'Conversion' });
  // Somewhere strictly between 0 and 100 %: the bar moved because the gateway said so.
  await expect(bar).toHaveAttribute('aria-valuenow', /^[1-9]\d?$/, { timeout: 120_000 });
  await expect(page.getByTestId('job-state')).toHaveText('Converting');
  await snap(page, 'convert-page-converting');

  // The history shows the running job with its progress too.
  await nav(page, 'History').click();
  const row = page.getByTestId('job-row').filter({ hasText: `${stem}.mp4` });
  await expect(row.getByText(/^(Converting|Done)$/)).toBeVisible();

  await expect(row.getByText('Done')).toBeVisible({ timeout: 170_000 });
  await expect(row.getByRole('button', { name: `Download ${stem}.mp3` })).toBeVisible();

  const jobs = await request.get('/api/jobs?page=1&per_page=20', { headers: { Authorization: `Bearer ${token}` } });
  const job = (await jobs.json()).jobs.find((candidate) => candidate.filename === `${stem}.mp4`);
  expect(job).toMatchObject({ state: 'completed' });
  const removed = await request.delete(`/api/jobs/${job.video_fid}`, { headers: { Authorization: `Bearer ${token}` } });
  expect(removed.status()).toBe(204);
});
