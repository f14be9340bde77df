import type { JobStatus } from '../api/client';
import { VBR_LEVELS, bitrateOf, type Quality } from '../api/limits';

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
  if (kind === 'cbr') {
    const bitrate = bitrateOf(Number(number));
    return bitrate === null ? null : { bitrate };
  }
  const level = Number(number);
  if (kind === 'vbr' && VBR_LEVELS.some(([offered]) => offered === level)) return { vbrQuality: level };
  return null;
}
