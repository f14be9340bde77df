// The JWT lives in sessionStorage: it survives reloads of the tab but not closing it, and other
// tabs do not see it (see docs/frontend.md for why not localStorage).

const KEY = 'vidconv.token';

/** The claims of a JWT (payload only; the gateway verifies the signature), or null when unreadable. */
export function decodeClaims(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** Milliseconds until the token expires (negative when expired), or null without an `exp` claim. */
export function msUntilExpiry(token, now = Date.now()) {
  const exp = decodeClaims(token)?.exp;
  return typeof exp === 'number' ? exp * 1000 - now : null;
}

/** The stored token, or null. */
export function loadToken() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

/** Stores or (with null) forgets the token. */
export function saveToken(token) {
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage can be disabled (private modes); the session then lasts as long as the page.
  }
}

const JOB_KEY = 'vidconv.currentJob';

/** The upload the convert page is following (`{videoFid, filename}`), kept across page changes. */
export function loadCurrentJob() {
  try {
    const job = JSON.parse(sessionStorage.getItem(JOB_KEY));
    return job && typeof job.videoFid === 'string' ? job : null;
  } catch {
    return null;
  }
}

/** Stores or (with null) forgets the upload the convert page is following. */
export function saveCurrentJob(job) {
  try {
    if (job) sessionStorage.setItem(JOB_KEY, JSON.stringify(job));
    else sessionStorage.removeItem(JOB_KEY);
  } catch {
    // as for the token
  }
}

const BATCH_KEY = 'vidconv.currentBatch';

/** The uploaded files of the batch the convert page shows (`[{videoFid, filename}]`), or null. */
export function loadCurrentBatch() {
  try {
    const batch = JSON.parse(sessionStorage.getItem(BATCH_KEY));
    if (!Array.isArray(batch)) return null;
    const jobs = batch.filter((job) => job && typeof job.videoFid === 'string' && typeof job.filename === 'string');
    return jobs.length ? jobs : null;
  } catch {
    return null;
  }
}

/** Stores or (with null or an empty list) forgets the uploaded files of the batch. */
export function saveCurrentBatch(jobs) {
  try {
    if (jobs?.length) sessionStorage.setItem(BATCH_KEY, JSON.stringify(jobs));
    else sessionStorage.removeItem(BATCH_KEY);
  } catch {
    // as for the token
  }
}
