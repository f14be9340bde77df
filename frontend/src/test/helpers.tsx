// Shared set-up for the component tests: a signed JWT-shaped token, a fake gateway for fetch(),
// and the whole app rendered at a path.
import { render } from '@testing-library/react';
import { QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { vi } from 'vitest';
import App from '../App';
import { AuthProvider } from '../auth/AuthContext';
import { createQueryClient } from '../api/queries';

function base64url(object: object): string {
  return btoa(JSON.stringify(object)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

/** `list[index]`, failing the test when there is no such item. */
export function at<T>(list: readonly T[], index: number): T {
  const item = list[index];
  if (item === undefined) throw new Error(`no item ${index} (of ${list.length})`);
  return item;
}

/** A token with the gateway's claims; the signature is not checked by the browser. */
export function makeToken({ username = 'ada@example.com', expiresIn = 3600 }: { username?: string; expiresIn?: number } = {}): string {
  const now = Math.floor(Date.now() / 1000);
  return `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url({ username, exp: now + expiresIn, iat: now, admin: true })}.c2ln`;
}

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

/**
 * What the original (Flask) gateway answers for a route it does not have, such as /events and
 * /jobs: Flask's HTML 404 page, not JSON.
 */
export function flask404(): Response {
  return new Response(
    '<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n' +
      '<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n',
    { status: 404, headers: { 'Content-Type': 'text/html; charset=utf-8' } },
  );
}

/** A request the fake gateway saw: method, path after /api, query and headers. */
export interface FakeCall {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Headers;
  signal: AbortSignal | null;
}

/** What the fake gateway answers for one route. */
export type FakeRoute = (call: FakeCall) => Response | Promise<Response>;

/**
 * Replaces fetch with `routes`: `{ 'GET /jobs': (request) => Response, ... }` matched on the
 * method and the path after /api (query ignored). Unmatched requests fail the test loudly.
 * Takes a `Request` (what openapi-fetch sends) or a URL with its init.
 */
export function fakeGateway(routes: Record<string, FakeRoute>): FakeCall[] {
  const calls: FakeCall[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const request = input instanceof Request ? input : new Request(new URL(String(input), 'http://localhost'), init);
    const url = new URL(request.url);
    const method = request.method.toUpperCase();
    const path = url.pathname.replace(/^\/api/, '');
    const call = { method, path, query: url.searchParams, headers: request.headers, signal: request.signal };
    calls.push(call);
    const handler = routes[`${method} ${path}`] ?? routes[`${method} ${path.replace(/\/[^/]+$/, '/:id')}`];
    if (!handler) throw new Error(`unexpected request ${method} ${url.pathname}`);
    return handler(call);
  });
  vi.stubGlobal('fetch', fetchMock);
  return calls;
}

/** Renders the whole app at `path`, signed in when `token` is given. */
export function renderApp(path: string, { token }: { token?: string } = {}) {
  if (token) sessionStorage.setItem('vidconv.token', token);
  return render(
    <QueryClientProvider client={createQueryClient()}>
      <MemoryRouter initialEntries={[path]}>
        <AuthProvider>
          <App />
        </AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

/** A stand-in XMLHttpRequest the test drives: `FakeXhr.last.progress(n)`, `.respond(status, body)`. */
export class FakeXhr {
  static last: FakeXhr | null = null;

  /** Every request made since the test reset it, in order. */
  static all: FakeXhr[] = [];

  upload: { onprogress?: (event: { loaded: number; total: number; lengthComputable: boolean }) => void } = {};
  headers: Record<string, string> = {};
  status = 0;
  responseText = '';
  responseHeaders: Record<string, string> = {};
  method = '';
  url = '';
  body: FormData = new FormData();
  onload?: () => void;
  onerror?: () => void;
  onabort?: () => void;

  constructor() {
    this.upload = {};
    this.headers = {};
    this.status = 0;
    this.responseText = '';
    FakeXhr.last = this;
    FakeXhr.all.push(this);
  }

  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }

  setRequestHeader(name: string, value: string) {
    this.headers[name] = value;
  }

  getResponseHeader(name: string): string | null {
    return this.responseHeaders[name.toLowerCase()] ?? null;
  }

  send(body: FormData) {
    this.body = body;
  }

  abort() {
    this.onabort?.();
  }

  /** The file sent in the form's `file` field. */
  file(): File {
    const file = this.body.get('file');
    if (!(file instanceof File)) throw new Error('no file in the upload');
    return file;
  }

  /** The request made last, failing the test when none was. */
  static latest(): FakeXhr {
    if (!FakeXhr.last) throw new Error('no upload was started');
    return FakeXhr.last;
  }

  progress(loaded: number, total: number) {
    this.upload.onprogress?.({ loaded, total, lengthComputable: true });
  }

  respond(status: number, body: unknown, headers: Record<string, string> = {}) {
    this.status = status;
    this.responseText = typeof body === 'string' ? body : JSON.stringify(body);
    this.responseHeaders = headers;
    this.onload?.();
  }
}
