// The gateway's HTTP API as seen through nginx (everything under /api, prefix stripped).
import { ApiError, NETWORK_MESSAGE, errorFor, errorFromResponse, parseErrorBody } from './errors.js';
import { SseParser } from '../lib/sse.js';

/** Where the gateway is reachable from the browser; nginx and the Vite dev server proxy it. */
export const API_BASE = import.meta.env.VITE_API_BASE || '/api';

/** MP3 bitrates (kb/s) the gateway accepts for constant-bitrate output. */
export const BITRATES = [64, 96, 128, 160, 192, 224, 256, 320];

/** States after which a job never changes again. */
export const TERMINAL = new Set(['completed', 'failed']);

function utf8Base64(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The HTTP Basic header for an email and password (UTF-8, so non-ASCII passwords work). */
export function basicAuth(email, password) {
  return `Basic ${utf8Base64(`${email}:${password}`)}`;
}

async function send(path, init, context) {
  let response;
  try {
    response = await fetch(`${API_BASE}${path}`, init);
  } catch (error) {
    if (error?.name === 'AbortError') throw error;
    throw new ApiError(0, NETWORK_MESSAGE);
  }
  if (!response.ok) throw await errorFromResponse(response, context);
  return response;
}

/** Logs in; resolves to the JWT. */
export async function login(email, password) {
  const response = await send('/login', { method: 'POST', headers: { Authorization: basicAuth(email, password) } }, 'login');
  return (await response.text()).trim();
}

/** Creates an account. */
export async function register(email, password) {
  await send('/register', { method: 'POST', headers: { Authorization: basicAuth(email, password) } }, 'register');
}

/**
 * The filename in a Content-Disposition header (RFC 6266: `filename*` wins over `filename`),
 * or null when there is none.
 */
export function filenameFromDisposition(header) {
  if (!header) return null;
  const extended = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(header);
  if (extended) {
    try {
      return decodeURIComponent(extended[2].trim().replace(/^"|"$/g, ''));
    } catch {
      // fall through to the plain parameter
    }
  }
  const quoted = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(header);
  if (quoted) return quoted[1].replace(/\\(.)/g, '$1');
  const plain = /filename\s*=\s*([^;]+)/i.exec(header);
  return plain ? plain[1].trim() : null;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/**
 * How `watch` follows a job. `pollMs`: the /status polling interval (3 s, as the original
 * frontend). Streams: the first reopen waits `reconnectMs`, doubling per failure in a row up to
 * `maxReconnectMs` (each wait is between half and all of that, so many pages do not come back
 * at the same moment); a stream that ended cleanly after at least `minStreamMs` resets the count;
 * `maxStreamFailures` in a row switch to polling. `maxPollFailures` failed polls in a row give up.
 */
export const WATCH_DEFAULTS = Object.freeze({
  pollMs: 3000,
  reconnectMs: 1000,
  maxReconnectMs: 15_000,
  minStreamMs: 10_000,
  maxStreamFailures: 3,
  maxPollFailures: 30,
});

/** /events answered with something that is not an event stream. */
class NoStream extends Error {}

/** A 4xx that asking again will not change: every one but 408 and 429. */
function isPermanent(error) {
  return (
    error instanceof ApiError &&
    error.status >= 400 &&
    error.status < 500 &&
    error.status !== 408 &&
    error.status !== 429
  );
}

/** The wait before reopening a stream after `failures` failures in a row (0 after a clean end). */
function reconnectDelay(failures, { reconnectMs, maxReconnectMs }) {
  const ceiling = Math.min(maxReconnectMs, reconnectMs * 2 ** Math.max(0, failures - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/**
 * Forgets the media cookie (`DELETE /media-cookie`) on logout. Needs no token; failures are
 * ignored: the cookie also expires with the token.
 */
export function clearMediaCookie() {
  return fetch(`${API_BASE}/media-cookie`, { method: 'DELETE' }).then(
    () => undefined,
    () => undefined,
  );
}

/**
 * The calls that need the JWT. `onUnauthorized` runs on any 401 (expired or invalid token)
 * before the error is thrown, so the app can send the user to the login page.
 */
export function createApi(token, onUnauthorized = () => {}) {
  const authHeaders = { Authorization: `Bearer ${token}` };

  async function authed(path, init = {}, context) {
    try {
      return await send(path, { ...init, headers: { ...authHeaders, ...init.headers } }, context);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) onUnauthorized(error);
      throw error;
    }
  }

  /** The current state of a job: `{status, state?, progress?, mp3_fid?, error?}`. */
  async function status(fid, signal) {
    const response = await authed(`/status?fid=${encodeURIComponent(fid)}`, { signal });
    return response.json();
  }

  // One POST /media-cookie per client (per token), shared by every player on the page.
  let mediaCookie = null;

  return {
    status,

    /**
     * Has the gateway set the HttpOnly media cookie from this token, so that an `<audio>` element
     * can stream `mediaUrl()` without the token in its URL. Rejects with the ApiError (404 from a
     * gateway without previews, such as the original); a later call tries again.
     */
    enableMediaCookie() {
      mediaCookie ??= authed('/media-cookie', { method: 'POST' }).then(
        () => undefined,
        (error) => {
          mediaCookie = null;
          throw error;
        },
      );
      return mediaCookie;
    },

    /** The URL an `<audio>` element streams an MP3 from (with the media cookie; no token in it). */
    mediaUrl(mp3Fid) {
      return `${API_BASE}/download?fid=${encodeURIComponent(mp3Fid)}`;
    },

    /** One page of the user's jobs, newest first. A 404 means a gateway without /jobs (the original). */
    async jobs(page = 1, perPage = 20) {
      const response = await authed(`/jobs?page=${page}&per_page=${perPage}`);
      return response.json();
    },

    /** Deletes a job with its video and MP3. */
    async deleteJob(videoFid) {
      await authed(`/jobs/${encodeURIComponent(videoFid)}`, { method: 'DELETE' });
    },

    /**
     * Downloads an MP3 and hands it to the browser as a file named after the video.
     * A link cannot carry the Authorization header, so: fetch, blob, object URL, temporary <a download>.
     */
    async download(mp3Fid, fallbackName) {
      const response = await authed(`/download?fid=${encodeURIComponent(mp3Fid)}`);
      const blob = await response.blob();
      // Only an attachment's name is meant for people: the original gateway sends
      // `inline; filename=<mp3 id>.mp3`, and the video's name is better than an id.
      const disposition = response.headers.get('content-disposition') || '';
      const given = /^\s*attachment\b/i.test(disposition) ? filenameFromDisposition(disposition) : null;
      const name = given || fallbackName || 'audio.mp3';
      const url = URL.createObjectURL(blob);
      const link = document.createElement('a');
      link.href = url;
      link.download = name;
      link.hidden = true;
      document.body.appendChild(link);
      link.click();
      link.remove();
      // Revoking at once can cancel the download in some browsers; give it a moment.
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      return { name, size: blob.size };
    },

    /**
     * Uploads a video with XMLHttpRequest, the one browser API that reports upload progress.
     * `quality` is `{bitrate}` or `{vbrQuality}` or null. `onProgress({loaded, total, bytesPerSecond})`.
     * Returns `{promise, abort}`; the promise resolves to the gateway's `video_fid`.
     */
    upload(file, quality, onProgress = () => {}) {
      const form = new FormData();
      if (quality?.bitrate) form.append('bitrate', String(quality.bitrate));
      if (quality?.vbrQuality !== undefined && quality?.vbrQuality !== null) {
        form.append('vbr_quality', String(quality.vbrQuality));
      }
      // Text fields first, so the gateway knows the options before the file streams in.
      form.append('file', file, file.name);

      const xhr = new XMLHttpRequest();
      const promise = new Promise((resolve, reject) => {
        const started = performance.now();
        xhr.open('POST', `${API_BASE}/upload`);
        xhr.setRequestHeader('Authorization', authHeaders.Authorization);
        xhr.upload.onprogress = (event) => {
          const seconds = (performance.now() - started) / 1000;
          onProgress({
            loaded: event.loaded,
            total: event.lengthComputable ? event.total : file.size,
            bytesPerSecond: seconds > 0 ? event.loaded / seconds : 0,
          });
        };
        xhr.onload = () => {
          if (xhr.status >= 200 && xhr.status < 300) {
            try {
              const body = JSON.parse(xhr.responseText);
              if (body.video_fid) {
                resolve(body.video_fid);
                return;
              }
            } catch {
              // handled below
            }
            reject(new ApiError(xhr.status, 'The server answered the upload in a way this page does not understand.'));
            return;
          }
          const error = errorFor(
            xhr.status,
            parseErrorBody(xhr.responseText),
            xhr.getResponseHeader('retry-after'),
            'upload',
          );
          if (xhr.status === 401) onUnauthorized(error);
          reject(error);
        };
        xhr.onerror = () =>
          reject(new ApiError(0, 'The upload failed: the connection was lost, or the file is larger than the server accepts.'));
        xhr.onabort = () => reject(new DOMException('Upload cancelled', 'AbortError'));
        xhr.send(form);
      });
      return { promise, abort: () => xhr.abort() };
    },

    /**
     * Follows a job until it completes or fails. Calls `onUpdate(status)` with each
     * /status-shaped object and `onTransport('stream' | 'polling')` when the way of following
     * changes. Stops when `signal` aborts; resolves to the last status. See `WATCH_DEFAULTS`
     * (any of its fields can be passed here) for how streams are reopened and when polling starts.
     *
     * Server-Sent Events from /events are read with fetch() (EventSource cannot send the
     * Authorization header). A stream that ends without `completed` or `failed` is reopened: the
     * gateway caps a stream's lifetime. /status is polled instead when /events answers 404 (a
     * gateway without it, such as the original; or a job that is gone, which /status then
     * confirms), 429 (too many open streams) or fails `maxStreamFailures` times in a row.
     */
    async watch(fid, { onUpdate, onTransport = () => {}, signal, ...options }) {
      const settings = { ...WATCH_DEFAULTS, ...options };
      let last = null;
      const deliver = (data) => {
        last = data;
        onUpdate(data);
        return TERMINAL.has(data.status);
      };

      /** One stream: 'done' after a terminal status, 'ended' when it ends without one; throws otherwise. */
      async function followStream() {
        const response = await authed(`/events?fid=${encodeURIComponent(fid)}`, {
          headers: { Accept: 'text/event-stream' },
          signal,
          cache: 'no-store',
        });
        // No stream to read (an old browser, or something that is not the gateway's /events).
        if (!response.body || !(response.headers.get('content-type') || '').startsWith('text/event-stream')) {
          response.body?.cancel().catch(() => {});
          throw new NoStream();
        }
        onTransport('stream');
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return 'ended';
            for (const event of parser.push(value)) {
              let data;
              try {
                data = JSON.parse(event.data);
              } catch {
                continue; // not JSON; nothing this page understands
              }
              // The gateway's `error` event: the job vanished (deleted meanwhile). Polling /status
              // confirms it with the gateway's own 404 sentence.
              if (event.event === 'error') throw errorFor(404, typeof data?.error === 'string' ? data.error : null, null);
              if (data && typeof data.status === 'string' && deliver(data)) return 'done';
            }
          }
        } finally {
          reader.cancel().catch(() => {});
        }
      }

      let failures = 0;
      while (!signal?.aborted) {
        const opened = performance.now();
        let outcome;
        try {
          outcome = await followStream();
        } catch (error) {
          if (signal?.aborted) return last;
          if (error instanceof NoStream) break;
          if (error instanceof ApiError) {
            if (error.status === 404 || error.status === 429) break;
            if (isPermanent(error)) throw error;
          }
          outcome = 'failed';
        }
        if (outcome === 'done') return last;
        // A stream that lived a while and ended cleanly reached the gateway's lifetime cap: reopen
        // it soon. One that ended at once, or broke, counts as a failure and waits longer.
        if (outcome === 'ended' && performance.now() - opened >= settings.minStreamMs) failures = 0;
        else failures += 1;
        if (failures >= settings.maxStreamFailures) break;
        await sleep(reconnectDelay(failures, settings), signal);
      }
      if (signal?.aborted) return last;

      onTransport('polling');
      failures = 0;
      while (!signal?.aborted) {
        try {
          if (deliver(await status(fid, signal))) return last;
          failures = 0;
        } catch (error) {
          if (signal?.aborted) return last;
          if (isPermanent(error)) throw error;
          failures += 1;
          if (failures >= settings.maxPollFailures) throw error;
        }
        await sleep(settings.pollMs, signal);
      }
      return last;
    },
  };
}
