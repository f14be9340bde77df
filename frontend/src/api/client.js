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

  return {
    status,

    /** One page of the user's jobs, newest first. */
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
      const name = filenameFromDisposition(response.headers.get('content-disposition')) || fallbackName || 'audio.mp3';
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
     * Follows a job until it completes or fails: Server-Sent Events from /events read with fetch()
     * (EventSource cannot send the Authorization header), falling back to polling /status every
     * `pollMs` when the stream cannot be opened or breaks. Calls `onUpdate(status)` with each
     * /status-shaped object and `onTransport('stream' | 'polling')`. Stops when `signal` aborts.
     * Resolves to the last status.
     */
    async watch(fid, { onUpdate, onTransport = () => {}, signal, pollMs = 2000 }) {
      let last = null;
      const deliver = (data) => {
        last = data;
        onUpdate(data);
        return TERMINAL.has(data.status);
      };

      try {
        const response = await authed(`/events?fid=${encodeURIComponent(fid)}`, {
          headers: { Accept: 'text/event-stream' },
          signal,
          cache: 'no-store',
        });
        if (response.body) {
          onTransport('stream');
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          const parser = new SseParser();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            for (const event of parser.push(value)) {
              let data;
              try {
                data = JSON.parse(event.data);
              } catch {
                continue; // not a status line; ignore it
              }
              if (data && typeof data.status === 'string' && deliver(data)) {
                reader.cancel().catch(() => {});
                return last;
              }
            }
          }
        }
      } catch (error) {
        if (signal?.aborted) return last;
        // 401 already went to onUnauthorized; 404 means the job is gone: polling would say the same.
        if (error instanceof ApiError && (error.status === 401 || error.status === 404)) throw error;
      }

      // The stream failed or ended early: poll.
      onTransport('polling');
      let failures = 0;
      while (!signal?.aborted) {
        try {
          if (deliver(await status(fid, signal))) return last;
          failures = 0;
        } catch (error) {
          if (signal?.aborted) return last;
          if (error instanceof ApiError && (error.status === 401 || error.status === 404)) throw error;
          failures += 1;
          if (failures >= 30) throw error;
        }
        await sleep(pollMs, signal);
      }
      return last;
    },
  };
}
