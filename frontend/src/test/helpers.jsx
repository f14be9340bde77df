// Shared set-up for the component tests: a signed JWT-shaped token, a fake gateway for fetch(),
// and the whole app rendered at a path.
import { render } from '@testing-library/react';
import { MemoryRouter } from 'react-router-dom';
import { vi } from 'vitest';
import App from '../App.jsx';
import { AuthProvider } from '../auth/AuthContext.jsx';

function base64url(object) {
  return btoa(JSON.stringify(object)).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

/** A token with the gateway's claims; the signature is not checked by the browser. */
export function makeToken({ username = 'ada@example.com', expiresIn = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url({ username, exp: now + expiresIn, iat: now, admin: true })}.c2ln`;
}

export function json(body, status = 200, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

/**
 * What the original (Flask) gateway answers for a route it does not have, such as /events and
 * /jobs: Flask's HTML 404 page, not JSON.
 */
export function flask404() {
  return new Response(
    '<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n' +
      '<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n',
    { status: 404, headers: { 'Content-Type': 'text/html; charset=utf-8' } },
  );
}

/**
 * Replaces fetch with `routes`: `{ 'GET /jobs': (request) => Response, ... }` matched on the
 * method and the path after /api (query ignored). Unmatched requests fail the test loudly.
 */
export function fakeGateway(routes) {
  const calls = [];
  const fetchMock = vi.fn(async (input, init = {}) => {
    const url = new URL(input, 'http://localhost');
    const method = (init.method || 'GET').toUpperCase();
    const path = url.pathname.replace(/^\/api/, '');
    const headers = new Headers(init.headers);
    calls.push({ method, path, query: url.searchParams, headers, init });
    const handler = routes[`${method} ${path}`] ?? routes[`${method} ${path.replace(/\/[^/]+$/, '/:id')}`];
    if (!handler) throw new Error(`unexpected request ${method} ${url.pathname}`);
    return handler({ method, path, query: url.searchParams, headers, init });
  });
  vi.stubGlobal('fetch', fetchMock);
  return calls;
}

/** Renders the whole app at `path`, signed in when `token` is given. */
export function renderApp(path, { token } = {}) {
  if (token) sessionStorage.setItem('vidconv.token', token);
  return render(
    <MemoryRouter initialEntries={[path]}>
      <AuthProvider>
        <App />
      </AuthProvider>
    </MemoryRouter>,
  );
}

/** A stand-in XMLHttpRequest the test drives: `FakeXhr.last.progress(n)`, `.respond(status, body)`. */
export class FakeXhr {
  static last = null;

  /** Every request made since the test reset it, in order. */
  static all = [];

  constructor() {
    this.upload = {};
    this.headers = {};
    this.status = 0;
    this.responseText = '';
    FakeXhr.last = this;
    FakeXhr.all.push(this);
  }

  open(method, url) {
    this.method = method;
    this.url = url;
  }

  setRequestHeader(name, value) {
    this.headers[name] = value;
  }

  getResponseHeader(name) {
    return this.responseHeaders?.[name.toLowerCase()] ?? null;
  }

  send(body) {
    this.body = body;
  }

  abort() {
    this.onabort?.();
  }

  progress(loaded, total) {
    this.upload.onprogress?.({ loaded, total, lengthComputable: true });
  }

  respond(status, body, headers = {}) {
    this.status = status;
    this.responseText = typeof body === 'string' ? body : JSON.stringify(body);
    this.responseHeaders = headers;
    this.onload?.();
  }
}
