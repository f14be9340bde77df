import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeGateway, json } from '../test/helpers.jsx';
import { basicAuth, createApi, filenameFromDisposition, login, register } from './client.js';
import { ApiError, errorFor } from './errors.js';

function sseResponse(chunks, { close = true } = {}) {
  const encoder = new TextEncoder();
  const queue = [...chunks];
  const body = new ReadableStream({
    pull(controller) {
      if (queue.length > 0) controller.enqueue(encoder.encode(queue.shift()));
      else if (close) controller.close();
      else controller.error(new TypeError('network error'));
    },
  });
  return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } });
}

afterEach(() => vi.unstubAllGlobals());

describe('errors in words', () => {
  it('words each status the gateway documents', () => {
    expect(errorFor(401, 'invalid credentials', null, 'login').message).toBe('Wrong email or password.');
    expect(errorFor(401, null, null, 'default').message).toMatch(/session has expired/);
    expect(errorFor(409, 'user exists', null, 'register').message).toMatch(/already exists/);
    expect(errorFor(400, 'password must be at least 8 characters', null, 'register').message).toBe(
      'Password must be at least 8 characters.',
    );
    expect(errorFor(429, null, '42', 'login').message).toBe('Too many attempts. Try again in 42 seconds.');
    expect(errorFor(429, null, '120', 'login').message).toBe('Too many attempts. Try again in 2 minutes.');
    expect(errorFor(429, null, null, 'login').message).toBe('Too many attempts. Try again in a moment.');
    expect(errorFor(429, 'too many failed login attempts; try again in 888 seconds', null, 'login').message).toBe(
      'Too many failed login attempts; try again in 888 seconds.',
    );
    expect(errorFor(429, 'too many failed login attempts', '888', 'login').message).toBe(
      'Too many attempts. Try again in 15 minutes.',
    );
    expect(errorFor(503, null, null, 'login').message).toMatch(/sign-in service is unavailable/);
    expect(errorFor(413, null, null, 'upload').message).toMatch(/too large/);
    expect(errorFor(500, 'db exploded', null).message).toBe('Something went wrong on the server. Please try again.');
  });
});

describe('credentials', () => {
  it('encodes HTTP Basic as UTF-8', () => {
    expect(basicAuth('a@b.c', 'pässwörd')).toBe(`Basic ${btoa('a@b.c:p\u00c3\u00a4ssw\u00c3\u00b6rd')}`);
  });

  it('login returns the token body and sends Basic auth', async () => {
    const calls = fakeGateway({ 'POST /login': () => new Response('jwt.token.here\n', { status: 200 }) });
    await expect(login('a@b.co', 'secret123')).resolves.toBe('jwt.token.here');
    expect(calls[0].headers.get('authorization')).toBe(basicAuth('a@b.co', 'secret123'));
  });

  it('register rejects with the wording for 409 and 429', async () => {
    fakeGateway({ 'POST /register': () => json({ error: 'user already exists' }, 409) });
    await expect(register('a@b.co', 'secret123')).rejects.toThrow(/already exists/);
    fakeGateway({ 'POST /register': () => json({ error: 'slow down' }, 429, { 'Retry-After': '5' }) });
    await expect(register('a@b.co', 'secret123')).rejects.toMatchObject({ status: 429, retryAfter: 5 });
  });

  it('a network failure becomes a readable error', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))));
    await expect(login('a@b.co', 'secret123')).rejects.toThrow(/Cannot reach the server/);
  });
});

describe('download names', () => {
  it('reads filename* before filename', () => {
    expect(filenameFromDisposition('attachment; filename="clip.mp3"')).toBe('clip.mp3');
    expect(filenameFromDisposition("attachment; filename=\"x.mp3\"; filename*=UTF-8''caf%C3%A9.mp3")).toBe('café.mp3');
    expect(filenameFromDisposition('attachment; filename=plain.mp3')).toBe('plain.mp3');
    expect(filenameFromDisposition(null)).toBeNull();
  });
});

describe('watching a job', () => {
  it('follows the event stream to completion and sends the bearer token', async () => {
    const calls = fakeGateway({
      'GET /events': () =>
        sseResponse([
          ': hello\n\n',
          'data: {"status":"processing","state":"queued","progress":0}\n\n',
          'data: {"status":"processing","state":"processing","progress":40}\n\ndata: {"status":"compl',
          'eted","mp3_fid":"abc"}\n\n',
        ]),
    });
    const updates = [];
    const transports = [];
    const last = await createApi('tok').watch('vid1', { onUpdate: (u) => updates.push(u), onTransport: (t) => transports.push(t) });
    expect(last).toEqual({ status: 'completed', mp3_fid: 'abc' });
    expect(updates.map((u) => u.progress ?? u.status)).toEqual([0, 40, 'completed']);
    expect(transports).toEqual(['stream']);
    expect(calls[0].headers.get('authorization')).toBe('Bearer tok');
    expect(calls[0].query.get('fid')).toBe('vid1');
  });

  it('falls back to polling /status when the stream cannot be opened', async () => {
    let polls = 0;
    const calls = fakeGateway({
      'GET /events': () => new Response('no', { status: 502 }),
      'GET /status': () => {
        polls += 1;
        return json(polls < 3 ? { status: 'processing', state: 'processing', progress: polls * 30 } : { status: 'failed', error: 'no audio track' });
      },
    });
    const updates = [];
    const transports = [];
    const last = await createApi('tok').watch('vid2', {
      onUpdate: (u) => updates.push(u),
      onTransport: (t) => transports.push(t),
      pollMs: 1,
    });
    expect(last).toEqual({ status: 'failed', error: 'no audio track' });
    expect(updates).toHaveLength(3);
    expect(transports).toEqual(['polling']);
    expect(calls.filter((c) => c.path === '/status')).toHaveLength(3);
  });

  it('falls back to polling when the stream breaks before the end', async () => {
    fakeGateway({
      'GET /events': () => sseResponse(['data: {"status":"processing","state":"processing","progress":10}\n\n'], { close: false }),
      'GET /status': () => json({ status: 'completed', mp3_fid: 'm' }),
    });
    const updates = [];
    const last = await createApi('tok').watch('vid3', { onUpdate: (u) => updates.push(u), pollMs: 1 });
    expect(updates.map((u) => u.status)).toEqual(['processing', 'completed']);
    expect(last.mp3_fid).toBe('m');
  });

  it('reports a 401 to onUnauthorized and stops', async () => {
    fakeGateway({ 'GET /events': () => json({ error: 'token expired' }, 401) });
    const onUnauthorized = vi.fn();
    await expect(createApi('old', onUnauthorized).watch('v', { onUpdate: () => {} })).rejects.toBeInstanceOf(ApiError);
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });

  it('stops quietly when aborted', async () => {
    fakeGateway({
      'GET /events': () => new Response('no', { status: 502 }),
      'GET /status': () => json({ status: 'processing', state: 'queued', progress: 0 }),
    });
    const controller = new AbortController();
    const updates = [];
    const watching = createApi('tok').watch('v', {
      onUpdate: (u) => {
        updates.push(u);
        controller.abort();
      },
      signal: controller.signal,
      pollMs: 10_000,
    });
    await expect(watching).resolves.toEqual({ status: 'processing', state: 'queued', progress: 0 });
    expect(updates).toHaveLength(1);
  });
});

describe('jobs and downloads', () => {
  it('lists, deletes and downloads with the bearer token', async () => {
    const calls = fakeGateway({
      'GET /jobs': () => json({ jobs: [], page: 2, per_page: 5, total: 0 }),
      'DELETE /jobs/:id': () => new Response(null, { status: 204 }),
      'GET /download': () =>
        new Response(new Uint8Array([0xff, 0xfb, 0x90, 0x00]), {
          status: 200,
          headers: { 'Content-Type': 'audio/mpeg', 'Content-Disposition': 'attachment; filename="talk.mp3"' },
        }),
    });
    const api = createApi('tok');
    await expect(api.jobs(2, 5)).resolves.toMatchObject({ page: 2 });
    expect(calls[0].query.get('per_page')).toBe('5');
    await api.deleteJob('abc');
    expect(calls[1]).toMatchObject({ method: 'DELETE', path: '/jobs/abc' });

    URL.createObjectURL = vi.fn(() => 'blob:fake');
    URL.revokeObjectURL = vi.fn();
    const clicked = [];
    const click = vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function record() {
      clicked.push({ href: this.getAttribute('href'), download: this.download });
    });
    await expect(api.download('mp3id', 'fallback.mp3')).resolves.toEqual({ name: 'talk.mp3', size: 4 });
    expect(clicked).toEqual([{ href: 'blob:fake', download: 'talk.mp3' }]);
    expect(calls[2].headers.get('authorization')).toBe('Bearer tok');
    click.mockRestore();
  });
});
