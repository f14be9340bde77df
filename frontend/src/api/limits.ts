// The server's rules and options that the pages offer or check before asking, in one place.
// What the gateway's OpenAPI document states comes from it (schema.gen.ts, `npm run gen:api`);
// the rest is named here once.
import { uploadFormBitrateValues, type components } from './schema.gen';

/** The multipart form of POST /upload, as the gateway documents it. */
export type UploadForm = components['schemas']['UploadForm'];

/** A constant bitrate (kb/s) the gateway accepts. */
export type Bitrate = NonNullable<UploadForm['bitrate']>;

/** MP3 bitrates (kb/s) the gateway accepts for constant-bitrate output: the document's enum. */
export const BITRATES: readonly Bitrate[] = uploadFormBitrateValues;

/** The VBR levels the quality menu offers (LAME's V0 best to V9 smallest; the gateway takes 0-9). */
export const VBR_LEVELS: readonly (readonly [level: number, text: string])[] = [
  [0, 'best, ~245 kb/s'],
  [2, 'high, ~190 kb/s'],
  [4, 'good, ~165 kb/s'],
  [6, 'medium, ~115 kb/s'],
  [9, 'smallest, ~65 kb/s'],
];

/** The shortest password a new account may have, as the gateway's document states auth's rule. */
export { MIN_PASSWORD_LENGTH } from './rules.gen';

/** The upload's quality option: a constant bitrate or a VBR level. */
export type Quality = { bitrate: Bitrate } | { vbrQuality: number };

/** `kbps` as a bitrate the gateway accepts, or null. */
export function bitrateOf(kbps: number): Bitrate | null {
  return BITRATES.find((bitrate) => bitrate === kbps) ?? null;
}
