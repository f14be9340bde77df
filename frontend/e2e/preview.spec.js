// The preview in a real browser against the running stack: a finished conversion plays in the
// page. The <audio> element streams /api/download with Range requests, authenticated by the
// HttpOnly cookie the page had the gateway set, so no request URL carries the token; the duration
// comes from the element's metadata; logging out clears the cookie.
import { expect, logIn, makeVideo, registerByApi, snap, test, uniqueEmail } from './fixtures.js';

test('a finished conversion plays in the page without the token in any URL', async ({ page, request, context }) => {
  const email = uniqueEmail('preview');
  const token = await registerByApi(request, email);
  const stem = `preview-${Date.now().toString(36)}`;
  const video = makeVideo(stem, 4);

  const urls = [];
  const downloads = [];
  page.on('request', (req) => urls.push(req.url()));
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/api/download') {
      downloads.push({ status: response.status(), range: response.request().headers().range ?? null });
    }
  });

  await logIn(page, email);
  await page.getByLabel('Choose an MP4 video').setInputFiles(video);
  await page.getByRole('button', { name: 'Upload and convert' }).click();
  await expect(page.getByRole('button', { name: `Download ${stem}.mp3` })).toBeVisible({ timeout: 120_000 });

  const player = page.getByLabel(`Preview of ${stem}.mp3`);
  await expect(player).toBeVisible();
  // The browser read the file's metadata through the gateway: a duration, and the page shows it.
  await expect.poll(() => player.evaluate((audio) => audio.readyState), { timeout: 30_000 }).toBeGreaterThanOrEqual(1);
  const duration = await player.evaluate((audio) => audio.duration);
  expect(duration).toBeGreaterThan(3.5);
  expect(duration).toBeLessThan(4.6);
  await expect(page.getByText('Duration 0:04')).toBeVisible();

  // Playing works (muted: no sound device is needed) and moves the playhead.
  await player.evaluate(async (audio) => {
    audio.muted = true;
    await audio.play();
  });
  await expect.poll(() => player.evaluate((audio) => audio.currentTime), { timeout: 20_000 }).toBeGreaterThan(0.2);
  await player.evaluate((audio) => audio.pause());
  await snap(page, 'convert-page-preview');

  // The media element asked with Range and got partial content, authenticated by the cookie.
  expect(downloads.length).toBeGreaterThan(0);
  expect(downloads.some((d) => d.status === 206 && d.range?.startsWith('bytes='))).toBe(true);
  expect(downloads.every((d) => d.status === 200 || d.status === 206)).toBe(true);

  // No request of the page carried the token (or any part of it) in its URL.
  const signature = token.split('.')[2];
  const leaking = urls.filter((url) => url.includes(token) || url.includes(signature) || /[?&](token|access_token|jwt)=/i.test(url));
  expect(leaking).toEqual([]);

  // The cookie is HttpOnly (scripts cannot read it), SameSite=Strict, and goes away with the session.
  const cookie = (await context.cookies()).find((c) => c.name === 'vidconv_media');
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
  expect(await page.evaluate('document.cookie')).not.toContain('vidconv_media');
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
  await expect.poll(async () => (await context.cookies()).some((c) => c.name === 'vidconv_media')).toBe(false);

  // And without it, the download answers 401.
  const mp3Url = urls.find((url) => new URL(url).pathname === '/api/download');
  const after = await page.evaluate(async (url) => (await fetch(url)).status, mp3Url);
  expect(after).toBe(401);
});

test('history plays a conversion on demand', async ({ page, request }) => {
  const email = uniqueEmail('preview-history');
  await registerByApi(request, email);
  const stem = `history-preview-${Date.now().toString(36)}`;
  await logIn(page, email);
  await page.getByLabel('Choose an MP4 video').setInputFiles(makeVideo(stem, 2));
  await page.getByRole('button', { name: 'Upload and convert' }).click();
  await expect(page.getByRole('button', { name: `Download ${stem}.mp3` })).toBeVisible({ timeout: 120_000 });

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'History' }).click();
  const row = page.getByTestId('job-row').filter({ hasText: `${stem}.mp4` });
  await row.getByRole('button', { name: `Play ${stem}.mp4` }).click();
  const player = row.getByLabel(`Preview of ${stem}.mp3`);
  await expect.poll(() => player.evaluate((audio) => audio.duration || 0), { timeout: 30_000 }).toBeGreaterThan(1.5);
  await expect(row.getByText('Duration 0:02')).toBeVisible();
});
