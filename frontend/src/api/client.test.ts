import { afterEach, describe, expect, it, vi } from 'vitest';
import { at, fakeGateway, flask404, json } from '../test/helpers';
import { basicAuth, createApi, filenameFromDisposition, login, register, type JobStatus } from './client';
import { ApiError, errorFor } from './errors';

function sseResponse(chunks: string[], { close = true } = {}) {
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
    expect(errorFor(415, 'this file is a PDF document, not a video or audio file', null, 'upload').message).toBe(
      'This file is a PDF document, not a video or audio file.',
    );
    expect(errorFor(415, null, null, 'upload').message).toMatch(/not a video or audio file/);
    expect(errorFor(422, 'this video has no audio track, so there is nothing to convert to MP3', null, 'upload').message).toBe(
      'This video has no audio track, so there is nothing to convert to MP3.',
    );
    expect(errorFor(422, null, null, 'upload').message).toMatch(/no audio track/);
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
    expect(at(calls, 0).headers.get('authorization')).toBe(basicAuth('a@b.co', 'secret123'));
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
    const updates: JobStatus[] = [];
    const transports: string[] = [];
    const last = await createApi('tok').watch('vid1', { onUpdate: (u) => updates.push(u), onTransport: (t) => transports.push(t) });
    expect(last).toEqual({ status: 'completed', mp3_fid: 'abc' });
    expect(updates.map((u) => u.progress ?? u.status)).toEqual([0, 40, 'completed']);
    expect(transports).toEqual(['stream']);
    expect(at(calls, 0).headers.get('authorization')).toBe('Bearer tok');
    expect(at(calls, 0).query.get('fid')).toBe('vid1');
  });

  // Tiny waits so the tests follow the same paths as the page without its seconds.
  const fast = { pollMs: 1, reconnectMs: 1, maxReconnectMs: 1 };

  it('retries a stream that cannot be opened, then falls back to polling /status', async () => {
    let polls = 0;
    const calls = fakeGateway({
      'GET /events': () => new Response('no', { status: 502 }),
      'GET /status': () => {
        polls += 1;
        return json(polls < 3 ? { status: 'processing', state: 'processing', progress: polls * 30 } : { status: 'failed', error: 'no audio track' });
      },
    });
    const updates: JobStatus[] = [];
    const transports: string[] = [];
    const last = await createApi('tok').watch('vid2', {
      onUpdate: (u) => updates.push(u),
      onTransport: (t) => transports.push(t),
      ...fast,
    });
    expect(last).toEqual({ status: 'failed', error: 'no audio track' });
    expect(updates).toHaveLength(3);
    expect(transports).toEqual(['polling']);
    expect(calls.filter((c) => c.path === '/events')).toHaveLength(3);
    expect(calls.filter((c) => c.path === '/status')).toHaveLength(3);
  });

  it('reopens a stream that breaks, and polls after three breaks in a row', async () => {
    const calls = fakeGateway({
      'GET /events': () => sseResponse(['data: {"status":"processing","state":"processing","progress":10}\n\n'], { close: false }),
      'GET /status': () => json({ status: 'completed', mp3_fid: 'm' }),
    });
    const updates: JobStatus[] = [];
    const last = await createApi('tok').watch('vid3', { onUpdate: (u) => updates.push(u), ...fast });
    expect(updates.map((u) => u.status)).toEqual(['processing', 'processing', 'processing', 'completed']);
    expect(calls.map((c) => c.path)).toEqual(['/events', '/events', '/events', '/status']);
    expect(last?.mp3_fid).toBe('m');
  });

  it('reopens a stream that ends cleanly without a final state (the gateway caps its lifetime)', async () => {
    const streams = [
      ['data: {"status":"processing","state":"queued","progress":0}\n\n'],
      ['data: {"status":"processing","state":"processing","progress":30}\n\n'],
      [': keep-alive\n\n', 'data: {"status":"processing","state":"processing","progress":60}\n\n'],
      ['data: {"status":"processing","state":"processing","progress":90}\n\n', 'data: {"status":"completed","mp3_fid":"z"}\n\n'],
    ];
    const calls = fakeGateway({ 'GET /events': () => sseResponse(streams.shift() ?? []) });
    const updates: JobStatus[] = [];
    const transports: string[] = [];
    // minStreamMs 0: every stream counts as one that lived its full life, so four in a row are no failure.
    const last = await createApi('tok').watch('vid4', {
      onUpdate: (u) => updates.push(u),
      onTransport: (t) => transports.push(t),
      ...fast,
      minStreamMs: 0,
    });
    expect(last).toEqual({ status: 'completed', mp3_fid: 'z' });
    expect(updates.map((u) => u.progress ?? u.status)).toEqual([0, 30, 60, 90, 'completed']);
    expect(calls.map((c) => c.path)).toEqual(['/events', '/events', '/events', '/events']);
    expect(transports).not.toContain('polling');
  });

  it('counts streams that end at once as failures and then polls', async () => {
    const calls = fakeGateway({
      'GET /events': () => sseResponse(['data: {"status":"processing","state":"queued","progress":0}\n\n']),
      'GET /status': () => json({ status: 'completed', mp3_fid: 'q' }),
    });
    const transports: string[] = [];
    const last = await createApi('tok').watch('vid5', {
      onUpdate: () => {},
      onTransport: (t) => transports.push(t),
      ...fast,
      minStreamMs: Number.POSITIVE_INFINITY,
    });
    expect(last).toEqual({ status: 'completed', mp3_fid: 'q' });
    expect(calls.map((c) => c.path)).toEqual(['/events', '/events', '/events', '/status']);
    expect(transports.at(-1)).toBe('polling');
  });

  it('polls at once when the gateway refuses another stream with 429', async () => {
    let polls = 0;
    const calls = fakeGateway({
      'GET /events': () => json({ error: 'too many open event streams for this user' }, 429),
      'GET /status': () => {
        polls += 1;
        return json(polls < 2 ? { status: 'processing', state: 'processing', progress: 50 } : { status: 'completed', mp3_fid: 'r' });
      },
    });
    const transports: string[] = [];
    const last = await createApi('tok').watch('vid6', { onUpdate: () => {}, onTransport: (t) => transports.push(t), ...fast });
    expect(last).toEqual({ status: 'completed', mp3_fid: 'r' });
    expect(transports).toEqual(['polling']);
    expect(calls.map((c) => c.path)).toEqual(['/events', '/status', '/status']);
  });

  it('polls /status against the original gateway, whose /events is Flask\'s HTML 404', async () => {
    let polls = 0;
    const calls = fakeGateway({
      'GET /events': () => flask404(),
      // The original's answers: "processing" until an MP3 exists, then "completed" with its id.
      'GET /status': () => {
        polls += 1;
        return json(polls < 3 ? { status: 'processing' } : { status: 'completed', mp3_fid: '65f0c0ffee' });
      },
    });
    const updates: JobStatus[] = [];
    const transports: string[] = [];
    const last = await createApi('tok').watch('vid7', {
      onUpdate: (u) => updates.push(u),
      onTransport: (t) => transports.push(t),
      ...fast,
    });
    expect(last).toEqual({ status: 'completed', mp3_fid: '65f0c0ffee' });
    expect(updates.map((u) => u.status)).toEqual(['processing', 'processing', 'completed']);
    expect(transports).toEqual(['polling']);
    expect(calls.filter((c) => c.path === '/events')).toHaveLength(1);
    expect(calls.filter((c) => c.path === '/status').map((c) => c.query.get('fid'))).toEqual(['vid7', 'vid7', 'vid7']);
  });

  it('polls when /events answers something that is not an event stream', async () => {
    const calls = fakeGateway({
      'GET /events': () => new Response('<!doctype html><title>app</title>', { status: 200, headers: { 'Content-Type': 'text/html' } }),
      'GET /status': () => json({ status: 'completed', mp3_fid: 'h' }),
    });
    const transports: string[] = [];
    await expect(createApi('tok').watch('vid8', { onUpdate: () => {}, onTransport: (t) => transports.push(t), ...fast })).resolves.toEqual({
      status: 'completed',
      mp3_fid: 'h',
    });
    expect(transports).toEqual(['polling']);
    expect(calls.map((c) => c.path)).toEqual(['/events', '/status']);
  });

  it('a job that is gone (404 from /events, confirmed by /status) is an error', async () => {
    const calls = fakeGateway({
      'GET /events': () => json({ error: 'no such upload' }, 404),
      'GET /status': () => json({ error: 'no such upload' }, 404),
    });
    await expect(createApi('tok').watch('gone', { onUpdate: () => {}, ...fast })).rejects.toMatchObject({ status: 404, message: 'No such upload.' });
    expect(calls.map((c) => c.path)).toEqual(['/events', '/status']);
  });

  it('a job deleted while streaming (event: error) ends with the gateway\'s 404', async () => {
    const calls = fakeGateway({
      'GET /events': () =>
        sseResponse(['event: status\ndata: {"status":"processing","state":"processing","progress":20}\n\n', 'event: error\ndata: {"error":"no such upload"}\n\n']),
      'GET /status': () => json({ error: 'no such upload' }, 404),
    });
    const updates: JobStatus[] = [];
    await expect(createApi('tok').watch('deleted', { onUpdate: (u) => updates.push(u), ...fast })).rejects.toMatchObject({ status: 404 });
    expect(updates).toHaveLength(1);
    expect(calls.map((c) => c.path)).toEqual(['/events', '/status']);
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
    const updates: JobStatus[] = [];
    const watching = createApi('tok').watch('v', {
      onUpdate: (u) => {
        updates.push(u);
        controller.abort();
      },
      signal: controller.signal,
      pollMs: 10_000,
      reconnectMs: 1,
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
    expect(at(calls, 0).query.get('per_page')).toBe('5');
    await api.deleteJob('abc');
    expect(at(calls, 1)).toMatchObject({ method: 'DELETE', path: '/jobs/abc' });

    URL.createObjectURL = vi.fn(() => 'blob:fake');
    URL.revokeObjectURL = vi.fn();
    const clicked: { href: string | null; download: string }[] = [];
    const click = vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(function record(this: HTMLAnchorElement) {
      clicked.push({ href: this.getAttribute('href'), download: this.download });
    });
    await expect(api.download('mp3id', 'fallback.mp3')).resolves.toEqual({ name: 'talk.mp3', size: 4 });
    expect(clicked).toEqual([{ href: 'blob:fake', download: 'talk.mp3' }]);
    expect(at(calls, 2).headers.get('authorization')).toBe('Bearer tok');
    click.mockRestore();
  });

  it('names the MP3 after the video when the gateway gives only an inline id name (the original)', async () => {
    fakeGateway({
      'GET /download': () =>
        new Response(new Uint8Array([0xff, 0xfb]), {
          status: 200,
          headers: { 'Content-Type': 'audio/mpeg', 'Content-Disposition': 'inline; filename=65f0c0ffee.mp3' },
        }),
    });
    URL.createObjectURL = vi.fn(() => 'blob:fake');
    URL.revokeObjectURL = vi.fn();
    const click = vi.spyOn(HTMLAnchorElement.prototype, 'click').mockImplementation(() => {});
    await expect(createApi('tok').download('65f0c0ffee', 'holiday.mp3')).resolves.toEqual({ name: 'holiday.mp3', size: 2 });
    click.mockRestore();
  });
});
