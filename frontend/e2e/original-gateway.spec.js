// The page against a gateway without /events and /jobs, as the original (Flask) gateway is: the
// real stack, with the browser's /api/events and /api/jobs answered by Flask's HTML 404 page and
// /status and /download answers cut down to what the original sends. The page must still convert
// (by polling /status) and download, and the history must say it needs the new gateway.
import path from 'node:path';
import { expect, logIn, makeVideo, nav, probe, registerByApi, snap, test, uniqueEmail } from './fixtures.js';

const FLASK_404 =
  '<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n' +
  '<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n';

/** Makes the browser see the original gateway's API; returns what went over each route. */
async function actAsOriginalGateway(page) {
  const seen = { events: 0, jobs: 0, mediaCookie: 0, status: [] };
  await page.route(
    (url) => url.pathname === '/api/events',
    (route) => {
      seen.events += 1;
      return route.fulfill({ status: 404, contentType: 'text/html; charset=utf-8', body: FLASK_404 });
    },
  );
  await page.route(
    (url) => url.pathname === '/api/jobs' || url.pathname.startsWith('/api/jobs/'),
    (route) => {
      seen.jobs += 1;
      return route.fulfill({ status: 404, contentType: 'text/html; charset=utf-8', body: FLASK_404 });
    },
  );
  // No preview without /media-cookie: the page shows no player.
  await page.route(
    (url) => url.pathname === '/api/media-cookie',
    (route) => {
      seen.mediaCookie += 1;
      return route.fulfill({ status: 404, contentType: 'text/html; charset=utf-8', body: FLASK_404 });
    },
  );
  // The original's /status knows only "processing" and "completed" with the MP3's id.
  await page.route(
    (url) => url.pathname === '/api/status',
    async (route) => {
      const response = await route.fetch();
      if (!response.ok()) return route.fulfill({ response });
      const body = await response.json();
      const original = body.status === 'completed' ? { status: 'completed', mp3_fid: body.mp3_fid } : { status: 'processing' };
      seen.status.push(original);
      return route.fulfill({ response, json: original });
    },
  );
  // Flask's send_file(download_name=...) names the file after the MP3's id, inline.
  await page.route(
    (url) => url.pathname === '/api/download',
    async (route) => {
      const response = await route.fetch();
      const fid = new URL(route.request().url()).searchParams.get('fid');
      return route.fulfill({ response, headers: { ...response.headers(), 'content-disposition': `inline; filename=${fid}.mp3` } });
    },
  );
  return seen;
}

test('without /events and /jobs the page converts by polling /status and says history needs the new gateway', async ({ page, request }) => {
  const email = uniqueEmail('original');
  const token = await registerByApi(request, email);
  // Two minutes of audio: converting takes long enough that the first poll finds it unfinished.
  const video = makeVideo(`old-gateway-${Date.now().toString(36)}`, 120);
  const stem = path.basename(video, '.mp4');
  const seen = await actAsOriginalGateway(page);

  await logIn(page, email);
  const uploaded = page.waitForResponse((response) => new URL(response.url()).pathname === '/api/upload');
  await page.getByLabel('Choose an MP4 video').setInputFiles(video);
  await page.getByRole('button', { name: 'Upload and convert' }).click();
  const upload = await (await uploaded).json();
  expect(upload).toMatchObject({ status: 'success', video_fid: expect.any(String) });

  await expect(page.getByText('Live updates unavailable; checking every 3 seconds.')).toBeVisible();
  await expect(page.getByTestId('job-state')).toHaveText(/^(Queued|Converting)$/);
  const download = page.getByRole('button', { name: `Download ${stem}.mp3` });
  await expect(download).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('job-state')).toHaveText('Done');
  await expect(page.getByRole('alert')).toHaveCount(0);
  await expect.poll(() => seen.mediaCookie).toBeGreaterThan(0);
  await expect(page.locator('audio')).toHaveCount(0);
  await snap(page, 'convert-page-original-gateway');

  expect(seen.events).toBeGreaterThan(0);
  expect(seen.status.length).toBeGreaterThan(0);
  expect(seen.status.at(-1)).toEqual({ status: 'completed', mp3_fid: expect.any(String) });

  // The MP3 is real and named after the video, not after the id the original puts inline.
  const [file] = await Promise.all([page.waitForEvent('download'), download.click()]);
  expect(file.suggestedFilename()).toBe(`${stem}.mp3`);
  const saved = path.join(test.info().outputDir, file.suggestedFilename());
  await file.saveAs(saved);
  const info = probe(saved);
  expect(info.codecs).toContain('audio:mp3');
  expect(info.duration).toBeGreaterThan(115);
  expect(info.duration).toBeLessThan(125);

  await nav(page, 'History').click();
  await expect(page.getByRole('heading', { name: 'History' })).toBeVisible();
  await expect(page.getByText('History needs the new gateway: this server keeps no list of conversions.', { exact: false })).toBeVisible();
  await expect(page.getByRole('alert')).toHaveCount(0);
  expect(seen.jobs).toBeGreaterThan(0);
  await snap(page, 'history-page-original-gateway');

  // Tidy up through the real gateway (the browser's routes do not apply to `request`).
  const removed = await request.delete(`/api/jobs/${upload.video_fid}`, { headers: { Authorization: `Bearer ${token}` } });
  expect(removed.status()).toBe(204);
});
