// The server's rules and options that the pages offer or check before asking, in one place.
// Bitrates come from the gateway's OpenAPI document (schema.gen.ts, `npm run gen:api`); the
// rest are the services' own constants, named here once.
import type { components } from './schema.gen';

/** MP3 bitrates (kb/s) the gateway accepts for constant-bitrate output. */
export const BITRATES: readonly number[] = [64, 96, 128, 160, 192, 224, 256, 320];

/** The VBR levels the quality menu offers (LAME's V0 best to V9 smallest; the gateway takes 0-9). */
export const VBR_LEVELS: readonly (readonly [level: number, text: string])[] = [
  [0, 'best, ~245 kb/s'],
  [2, 'high, ~190 kb/s'],
  [4, 'good, ~165 kb/s'],
  [6, 'medium, ~115 kb/s'],
  [9, 'smallest, ~65 kb/s'],
];

/** The shortest password the auth service accepts for a new account. */
export const MIN_PASSWORD_LENGTH = 8;

/** The upload's quality option: a constant bitrate or a VBR level. */
export type Quality = { bitrate: number } | { vbrQuality: number };

/** A page of GET /jobs. */
export type JobsPageShape = components['schemas']['JobsPage'];
