// The JWT lives in sessionStorage: it survives reloads of the tab but not closing it, and other
// tabs do not see it (see docs/frontend.md for why not localStorage).

const KEY = 'vidconv.token';

/** The claims the pages read from the gateway's JWT. */
export interface Claims {
  username?: unknown;
  exp?: unknown;
  [claim: string]: unknown;
}

/** The claims of a JWT (payload only; the gateway verifies the signature), or null when unreadable. */
export function decodeClaims(token: string | null | undefined): Claims | null {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  const payload = parts[1];
  if (parts.length !== 3 || payload === undefined) return null;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? (claims as Claims) : null;
  } catch {
    return null;
  }
}

/** Milliseconds until the token expires (negative when expired), or null without an `exp` claim. */
export function msUntilExpiry(token: string | null, now = Date.now()): number | null {
  const exp = decodeClaims(token)?.exp;
  return typeof exp === 'number' ? exp * 1000 - now : null;
}

/** The stored token, or null. */
export function loadToken(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

/** Stores or (with null) forgets the token. */
export function saveToken(token: string | null): void {
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage can be disabled (private modes); the session then lasts as long as the page.
  }
}

const JOB_KEY = 'vidconv.currentJob';

/** An upload the convert page follows. */
export interface CurrentJob {
  videoFid: string;
  filename: string;
}

function isJob(job: unknown): job is CurrentJob {
  return !!job && typeof job === 'object' && 'videoFid' in job && typeof job.videoFid === 'string';
}

/** The upload the convert page is following (`{videoFid, filename}`), kept across page changes. */
export function loadCurrentJob(): CurrentJob | null {
  try {
    const job: unknown = JSON.parse(sessionStorage.getItem(JOB_KEY) ?? 'null');
    return isJob(job) ? job : null;
  } catch {
    return null;
  }
}

/** Stores or (with null) forgets the upload the convert page is following. */
export function saveCurrentJob(job: CurrentJob | null): void {
  try {
    if (job) sessionStorage.setItem(JOB_KEY, JSON.stringify(job));
    else sessionStorage.removeItem(JOB_KEY);
  } catch {
    // as for the token
  }
}

const BATCH_KEY = 'vidconv.currentBatch';

/** The uploaded files of the batch the convert page shows (`[{videoFid, filename}]`), or null. */
export function loadCurrentBatch(): CurrentJob[] | null {
  try {
    const batch: unknown = JSON.parse(sessionStorage.getItem(BATCH_KEY) ?? 'null');
    if (!Array.isArray(batch)) return null;
    const jobs = batch.filter((job: unknown): job is CurrentJob => isJob(job) && typeof job.filename === 'string');
    return jobs.length ? jobs : null;
  } catch {
    return null;
  }
}

/** Stores or (with null or an empty list) forgets the uploaded files of the batch. */
export function saveCurrentBatch(jobs: CurrentJob[] | null): void {
  try {
    if (jobs?.length) sessionStorage.setItem(BATCH_KEY, JSON.stringify(jobs));
    else sessionStorage.removeItem(BATCH_KEY);
  } catch {
    // as for the token
  }
}
