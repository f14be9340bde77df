// One user's conversions are invisible to another, in the page and in the API.
import { PASSWORD, expect, nav, logIn, makeVideo, registerByApi, snap, test, uniqueEmail } from './fixtures.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';

test('a second user does not see the first user\'s jobs', async ({ page, request }) => {
  const first = uniqueEmail('owner');
  const second = uniqueEmail('other');
  const firstToken = await registerByApi(request, first);
  const secondToken = await registerByApi(request, second, PASSWORD);

  const video = makeVideo(`private-${Date.now().toString(36)}`);
  const upload = await request.post('/api/upload', {
    headers: { Authorization: `Bearer ${firstToken}` },
    multipart: { file: { name: path.basename(video), mimeType: 'video/mp4', buffer: readFileSync(video) } },
  });
  expect(upload.status(), await upload.text()).toBe(200);
  const { video_fid: videoFid } = await upload.json();

  // The owner sees it.
  const own = await request.get('/api/jobs?page=1&per_page=20', { headers: { Authorization: `Bearer ${firstToken}` } });
  expect((await own.json()).jobs.map((job) => job.video_fid)).toContain(videoFid);

  // The other user does not: not in the page, not by id.
  await logIn(page, second);
  await nav(page, 'History').click();
  await expect(page.getByText('No conversions yet.')).toBeVisible();
  await expect(page.getByText(path.basename(video))).toHaveCount(0);
  await snap(page, 'history-page-empty');

  const status = await request.get(`/api/status?fid=${videoFid}`, { headers: { Authorization: `Bearer ${secondToken}` } });
  expect(status.status()).toBe(404);
  const remove = await request.delete(`/api/jobs/${videoFid}`, { headers: { Authorization: `Bearer ${secondToken}` } });
  expect(remove.status()).toBe(404);

  // Clean up as the owner.
  const cleanup = await request.delete(`/api/jobs/${videoFid}`, { headers: { Authorization: `Bearer ${firstToken}` } });
  expect(cleanup.status()).toBe(204);
});

test('an invalid session sends the user to login with a message', async ({ page }) => {
  await page.goto('/login');
  // A token the gateway cannot verify, as after a secret rotation or tampering.
  await page.evaluate(() => {
    const part = (o) => btoa(JSON.stringify(o)).replace(/=+$/, '');
    const exp = Math.floor(Date.now() / 1000) + 3600;
    sessionStorage.setItem('vidconv.token', `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ username: 'x@example.com', exp })}.bad`);
  });
  await page.goto('/history');
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
  await expect(page.getByRole('status')).toHaveText('Your session has expired. Please log in again.');
  await snap(page, 'login-page-session-expired');
});

test('an unknown address shows a page-not-found page with a way back', async ({ page }) => {
  const response = await page.goto('/no/such/page');
  // nginx serves the app for any path (SPA fallback); the app's router says "not found".
  expect(response.status()).toBe(200);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await snap(page, 'not-found-page');
  await page.getByRole('link', { name: 'Go to the start page' }).click();
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
});
