// The gateway's HTTP API as seen through nginx (everything under /api, prefix stripped). Every
// call goes through `openapi-fetch` typed by `schema.gen.ts`, which is generated from the
// gateway's own OpenAPI document (`npm run gen:api`): a path, parameter or body the document
// does not have is a type error.
import createClient from 'openapi-fetch';
import type { PathsWithMethod } from 'openapi-typescript-helpers';
import { ApiError, NETWORK_MESSAGE, errorFor, errorFromResponse, errorMessageOf, isAbortError, parseErrorBody, type ErrorContext } from './errors';
import type { components, paths } from './schema.gen';
import type { Quality, UploadForm } from './limits';
import { readEvents } from '../lib/sse';

/** What /status and each event of /events carry. */
export type JobStatus = components['schemas']['StatusBody'];
/** One page of GET /jobs. */
export type JobsPage = components['schemas']['JobsPage'];
/** One job of GET /jobs. */
export type JobView = components['schemas']['JobView'];
type UploadResponse = components['schemas']['UploadResponse'];

/** Where the gateway is reachable from the browser; nginx and the Vite dev server proxy it. */
export const API_BASE: string = import.meta.env.VITE_API_BASE || '/api';

/** A job's state and the original's `status`, as the gateway's document lists them. */
export type JobState = components['schemas']['JobState'];
type Status = components['schemas']['Status'];

/** States after which a job never changes again. */
export const TERMINAL: ReadonlySet<JobState | Status> = new Set<JobState & Status>(['completed', 'failed']);

/** The typed client; `fetch` is looked up per call so that tests can replace it. */
function gateway(headers: Record<string, string> = {}) {
  return createClient<paths>({
    // Absolute, as `Request` needs outside a browser; in the browser the same address.
    baseUrl: new URL(API_BASE, document.baseURI).href.replace(/\/$/, ''),
    fetch: (request) => globalThis.fetch(request),
    headers,
  });
}

type Result<D> = { data?: D; error?: unknown; response: Response };

/** Awaits a typed call: a network failure and any non-2xx answer become an ApiError. */
async function settle<D>(pending: Promise<Result<D>>, context: ErrorContext = 'default'): Promise<{ data: D | undefined; response: Response }> {
  let result: Result<D>;
  try {
    result = await pending;
  } catch (error) {
    if (isAbortError(error)) throw error;
    throw new ApiError(0, NETWORK_MESSAGE);
  }
  if (!result.response.ok) throw errorFromResponse(result.response, result.error, context);
  return { data: result.data, response: result.response };
}

function utf8Base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The HTTP Basic header for an email and password (UTF-8, so non-ASCII passwords work). */
export function basicAuth(email: string, password: string): string {
  return `Basic ${utf8Base64(`${email}:${password}`)}`;
}

/** Logs in; resolves to the JWT. */
export async function login(email: string, password: string): Promise<string> {
  const { data } = await settle(
    gateway().POST('/login', { headers: { Authorization: basicAuth(email, password) }, parseAs: 'text' }),
    'login',
  );
  return (data ?? '').trim();
}

/** Creates an account. */
export async function register(email: string, password: string): Promise<void> {
  await settle(gateway().POST('/register', { headers: { Authorization: basicAuth(email, password) }, parseAs: 'text' }), 'register');
}

/**
 * The filename in a Content-Disposition header (RFC 6266: `filename*` wins over `filename`),
 * or null when there is none.
 */
export function filenameFromDisposition(header: string | null): string | null {
  if (!header) return null;
  const extended = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(header);
  if (extended?.[2]) {
    try {
      return decodeURIComponent(extended[2].trim().replace(/^"|"$/g, ''));
    } catch {
      // fall through to the plain parameter
    }
  }
  const quoted = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(header);
  if (quoted?.[1] !== undefined) return quoted[1].replace(/\\(.)/g, '$1');
  const plain = /filename\s*=\s*([^;]+)/i.exec(header);
  return plain?.[1] ? plain[1].trim() : null;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
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

/** How `watch` follows a job; see `WATCH_DEFAULTS`. */
export interface WatchSettings {
  pollMs: number;
  reconnectMs: number;
  maxReconnectMs: number;
  minStreamMs: number;
  maxStreamFailures: number;
  maxPollFailures: number;
}

/**
 * How `watch` follows a job. `pollMs`: the /status polling interval (3 s, as the original
 * frontend). Streams: the first reopen waits `reconnectMs`, doubling per failure in a row up to
 * `maxReconnectMs` (each wait is between half and all of that, so many pages do not come back
 * at the same moment); a stream that ended cleanly after at least `minStreamMs` resets the count;
 * `maxStreamFailures` in a row switch to polling. `maxPollFailures` failed polls in a row give up.
 */
export const WATCH_DEFAULTS: Readonly<WatchSettings> = Object.freeze({
  pollMs: 3000,
  reconnectMs: 1000,
  maxReconnectMs: 15_000,
  minStreamMs: 10_000,
  maxStreamFailures: 3,
  maxPollFailures: 30,
});

/** What `watch` is told: where updates go, and when to stop. */
export interface WatchOptions extends Partial<WatchSettings> {
  onUpdate: (status: JobStatus) => void;
  onTransport?: (transport: 'stream' | 'polling') => void;
  signal?: AbortSignal;
}

/** /events answered with something that is not an event stream. */
class NoStream extends Error {}

/** A 4xx that asking again will not change: every one but 408 and 429. */
function isPermanent(error: unknown): boolean {
  return error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
}

/** The wait before reopening a stream after `failures` failures in a row (0 after a clean end). */
function reconnectDelay(failures: number, { reconnectMs, maxReconnectMs }: WatchSettings): number {
  const ceiling = Math.min(maxReconnectMs, reconnectMs * 2 ** Math.max(0, failures - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** A /status-shaped object from an event's data, or null when it is not one. */
function statusOf(data: unknown): JobStatus | null {
  return data !== null && typeof data === 'object' && 'status' in data && typeof data.status === 'string' ? (data as JobStatus) : null;
}

/**
 * Forgets the media cookie (`DELETE /media-cookie`) on logout. Needs no token; failures are
 * ignored: the cookie also expires with the token.
 */
export function clearMediaCookie(): Promise<void> {
  return gateway()
    .DELETE('/media-cookie')
    .then(
      () => undefined,
      () => undefined,
    );
}

/** Upload progress: bytes sent, of how many, and the average speed so far. */
export interface UploadProgress {
  loaded: number;
  total: number;
  bytesPerSecond: number;
}

/** The client of the calls that need the JWT (see `createApi`). */
export type Api = ReturnType<typeof createApi>;

/**
 * The calls that need the JWT. `onUnauthorized` runs on any 401 (expired or invalid token)
 * before the error is thrown, so the app can send the user to the login page.
 */
export function createApi(token: string, onUnauthorized: (error: ApiError) => void = () => {}) {
  const authorization = `Bearer ${token}`;
  const client = gateway({ Authorization: authorization });

  /** `settle` that also reports a 401. */
  async function authed<D>(pending: Promise<Result<D>>, context: ErrorContext = 'default') {
    try {
      return await settle(pending, context);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) onUnauthorized(error);
      throw error;
    }
  }

  /** The current state of a job. */
  async function status(fid: string, signal?: AbortSignal): Promise<JobStatus> {
    const { data } = await authed(client.GET('/status', { params: { query: { fid } }, signal }));
    if (!data) throw new ApiError(200, 'The server answered in a way this page does not understand.');
    return data;
  }

  // One POST /media-cookie per client (per token), shared by every player on the page.
  let mediaCookie: Promise<void> | null = null;

  return {
    status,

    /**
     * Has the gateway set the HttpOnly media cookie from this token, so that an `<audio>` element
     * can stream `mediaUrl()` without the token in its URL. Rejects with the ApiError (404 from a
     * gateway without previews, such as the original); a later call tries again.
     */
    enableMediaCookie(): Promise<void> {
      mediaCookie ??= authed(client.POST('/media-cookie')).then(
        () => undefined,
        (error: unknown) => {
          mediaCookie = null;
          throw error;
        },
      );
      return mediaCookie;
    },

    /** The URL an `<audio>` element streams an MP3 from (with the media cookie; no token in it). */
    mediaUrl(mp3Fid: string): string {
      const path = '/download' satisfies PathsWithMethod<paths, 'get'>;
      return `${API_BASE}${path}?fid=${encodeURIComponent(mp3Fid)}`;
    },

    /** One page of the user's jobs, newest first. A 404 means a gateway without /jobs (the original). */
    async jobs(page = 1, perPage = 20, signal?: AbortSignal): Promise<JobsPage> {
      const { data } = await authed(client.GET('/jobs', { params: { query: { page, per_page: perPage } }, signal }));
      if (!data) throw new ApiError(200, 'The server answered in a way this page does not understand.');
      return data;
    },

    /** Deletes a job with its video and MP3. */
    async deleteJob(videoFid: string): Promise<void> {
      await authed(client.DELETE('/jobs/{video_fid}', { params: { path: { video_fid: videoFid } } }));
    },

    /**
     * Downloads an MP3 and hands it to the browser as a file named after the video.
     * A link cannot carry the Authorization header, so: fetch, blob, object URL, temporary <a download>.
     */
    async download(mp3Fid: string, fallbackName?: string): Promise<{ name: string; size: number }> {
      const { data, response } = await authed(client.GET('/download', { params: { query: { fid: mp3Fid } }, parseAs: 'blob' }));
      const blob = data ?? new Blob();
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
     * Uploads a video with XMLHttpRequest, the one browser API that reports upload progress (so
     * not through openapi-fetch; the path and the answer are still the document's types).
     * Returns `{promise, abort}`; the promise resolves to the gateway's `video_fid`.
     */
    upload(file: File, quality: Quality | null, onProgress: (progress: UploadProgress) => void = () => {}) {
      const form = new FormData();
      // The field names are the document's (UploadForm), checked by tsc.
      const field = (name: keyof UploadForm, value: string) => form.append(name, value);
      if (quality && 'bitrate' in quality) field('bitrate', String(quality.bitrate));
      if (quality && 'vbrQuality' in quality) field('vbr_quality', String(quality.vbrQuality));
      // Text fields first, so the gateway knows the options before the file streams in.
      form.append('file' satisfies keyof UploadForm, file, file.name);

      const path = '/upload' satisfies PathsWithMethod<paths, 'post'>;
      const xhr = new XMLHttpRequest();
      const promise = new Promise<string>((resolve, reject) => {
        const started = performance.now();
        xhr.open('POST', `${API_BASE}${path}`);
        xhr.setRequestHeader('Authorization', authorization);
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
              const body = JSON.parse(xhr.responseText) as Partial<UploadResponse> | null;
              if (typeof body?.video_fid === 'string' && body.video_fid) {
                resolve(body.video_fid);
                return;
              }
            } catch {
              // handled below
            }
            reject(new ApiError(xhr.status, 'The server answered the upload in a way this page does not understand.'));
            return;
          }
          const error = errorFor(xhr.status, parseErrorBody(xhr.responseText), xhr.getResponseHeader('retry-after'), 'upload');
          if (xhr.status === 401) onUnauthorized(error);
          reject(error);
        };
        xhr.onerror = () => reject(new ApiError(0, 'The upload failed: the connection was lost, or the file is larger than the server accepts.'));
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
     * Authorization header) and parsed by eventsource-parser. A stream that ends without
     * `completed` or `failed` is reopened: the gateway caps a stream's lifetime. /status is polled
     * instead when /events answers 404 (a gateway without it, such as the original; or a job that
     * is gone, which /status then confirms), 429 (too many open streams) or fails
     * `maxStreamFailures` times in a row.
     */
    async watch(fid: string, { onUpdate, onTransport = () => {}, signal, ...options }: WatchOptions): Promise<JobStatus | null> {
      const settings: WatchSettings = { ...WATCH_DEFAULTS, ...options };
      let last: JobStatus | null = null;
      const deliver = (data: JobStatus) => {
        last = data;
        onUpdate(data);
        return TERMINAL.has(data.status);
      };

      /** One stream: 'done' after a terminal status, 'ended' when it ends without one; throws otherwise. */
      async function followStream(): Promise<'done' | 'ended'> {
        const { data: body, response } = await authed(
          client.GET('/events', {
            params: { query: { fid } },
            headers: { Accept: 'text/event-stream' },
            parseAs: 'stream',
            signal,
            cache: 'no-store',
          }),
        );
        // No stream to read (an old browser, or something that is not the gateway's /events).
        if (!body || !(response.headers.get('content-type') || '').startsWith('text/event-stream')) {
          body?.cancel().catch(() => {});
          throw new NoStream();
        }
        onTransport('stream');
        for await (const event of readEvents(body)) {
          let data: unknown;
          try {
            data = JSON.parse(event.data);
          } catch {
            continue; // not JSON; nothing this page understands
          }
          // The gateway's `error` event: the job vanished (deleted meanwhile). Polling /status
          // confirms it with the gateway's own 404 sentence.
          if (event.event === 'error') throw errorFor(404, errorMessageOf(data), null);
          const update = statusOf(data);
          if (update && deliver(update)) return 'done';
        }
        return 'ended';
      }

      let failures = 0;
      while (!signal?.aborted) {
        const opened = performance.now();
        let outcome: 'done' | 'ended' | 'failed';
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
