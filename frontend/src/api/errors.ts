// Turning the gateway's answers into sentences a person understands.

/** An HTTP error from the API, with the status and a message meant for the user. */
export class ApiError extends Error {
  /** The HTTP status; 0 when no answer came. */
  readonly status: number;
  /** Seconds the server asked to wait (Retry-After), or null. */
  readonly retryAfter: number | null;
  /** The server's own `error` sentence, or null. */
  readonly serverMessage: string | null;

  constructor(
    status: number,
    message: string,
    { retryAfter = null, serverMessage = null }: { retryAfter?: number | null; serverMessage?: string | null } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.retryAfter = retryAfter;
    this.serverMessage = serverMessage;
  }
}

/** The message used when a request never got an answer. */
export const NETWORK_MESSAGE = 'Cannot reach the server. Check your connection and try again.';

/** The message shown on the login page after a 401 from any signed-in request. */
export const SESSION_EXPIRED_MESSAGE = 'Your session has expired. Please log in again.';

function retryAfterSeconds(header: string | null): number | null {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(header);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function waitPhrase(seconds: number | null): string {
  if (seconds === null) return 'a moment';
  if (seconds < 60) return seconds === 1 ? '1 second' : `${seconds} seconds`;
  const minutes = Math.ceil(seconds / 60);
  return minutes === 1 ? '1 minute' : `${minutes} minutes`;
}

/** Capitalises the server's message and ends it with a full stop. */
function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return trimmed;
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** Which request an error answers: picks the wording for statuses whose meaning depends on it. */
export type ErrorContext = 'login' | 'register' | 'upload' | 'default';

/** Builds the ApiError for a non-2xx response. */
export function errorFor(
  status: number,
  serverMessage: string | null,
  retryAfterHeader: string | null,
  context: ErrorContext = 'default',
): ApiError {
  const retryAfter = retryAfterSeconds(retryAfterHeader);
  const server = serverMessage ? sentence(serverMessage) : null;
  let message: string;
  switch (status) {
    case 400:
      message = server || 'The request was not accepted. Check what you entered.';
      break;
    case 401:
      message = context === 'login' ? 'Wrong email or password.' : SESSION_EXPIRED_MESSAGE;
      break;
    case 404:
      message = server || 'Not found. It may have been deleted.';
      break;
    case 409:
      message =
        context === 'register' ? 'An account with this email already exists. Log in instead.' : server || 'Conflict.';
      break;
    case 413:
      message = server || 'The file is too large for the server.';
      break;
    case 415:
      // The gateway names what the file is ("a PDF document, not a video or audio file").
      message = server || 'This file is not a video or audio file that can be converted.';
      break;
    case 422:
      message = server || 'This video cannot be converted: it has no audio track.';
      break;
    case 429:
      // Without Retry-After the server's own sentence (which may name the wait) beats "a moment".
      message =
        retryAfter === null && server ? server : `Too many attempts. Try again in ${waitPhrase(retryAfter)}.`;
      break;
    case 502:
    case 503:
    case 504:
      message =
        context === 'login' || context === 'register'
          ? 'The sign-in service is unavailable right now. Please try again shortly.'
          : server || 'The service is unavailable right now. Please try again shortly.';
      break;
    default:
      message = status >= 500 ? 'Something went wrong on the server. Please try again.' : server || `Request failed (${status}).`;
  }
  return new ApiError(status, message, { retryAfter, serverMessage });
}

/** Reads `{"error": "..."}` from a response body, or null when the body is not that JSON. */
export function parseErrorBody(text: string | null | undefined): string | null {
  if (!text) return null;
  try {
    return errorMessageOf(JSON.parse(text));
  } catch {
    // nginx answers some errors (413, 502) with an HTML page: the status alone tells what happened.
  }
  return null;
}

/** The `error` sentence of an already parsed error body (`{"error": "..."}`), or null. */
export function errorMessageOf(body: unknown): string | null {
  if (body && typeof body === 'object' && 'error' in body && typeof body.error === 'string') return body.error;
  return null;
}

/** Whether something caught is a cancellation (fetch's or XHR's AbortError; a DOMException need not be an Error). */
export function isAbortError(caught: unknown): boolean {
  return typeof caught === 'object' && caught !== null && 'name' in caught && caught.name === 'AbortError';
}

/** The message of anything caught: an Error's, or a generic sentence. */
export function messageOf(caught: unknown): string {
  return caught instanceof Error && caught.message ? caught.message : 'Something went wrong. Please try again.';
}

/** Builds the ApiError for a fetch() Response whose body `body` has been read already. */
export function errorFromResponse(response: Response, body: unknown, context: ErrorContext = 'default'): ApiError {
  const message = typeof body === 'string' ? parseErrorBody(body) : errorMessageOf(body);
  return errorFor(response.status, message, response.headers.get('retry-after'), context);
}
