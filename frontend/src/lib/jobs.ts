import type { JobStatus } from '../api/client';
import type { Quality } from '../api/limits';

// Small pure helpers about jobs and upload options, shared by components and tests.

/** The state word of a /status answer (`state` while processing, else `status`). */
export function stateOf(status: JobStatus | null): string {
  if (!status) return 'queued';
  if (status.status === 'processing') return status.state || 'processing';
  return status.status;
}

/** Parses the quality select's value ("", "cbr:192", "vbr:2") into the upload's quality option. */
export function parseQuality(value: string): Quality | null {
  const [kind, number] = (value || '').split(':');
  if (kind === 'cbr') return { bitrate: Number(number) };
  if (kind === 'vbr') return { vbrQuality: Number(number) };
  return null;
}
