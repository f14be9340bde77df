import { describe, expect, it } from 'vitest';
import { formatBytes, formatDate, formatDuration, formatEta, formatExpiry, formatSpeed, isMp4, mp3NameFor } from './format';
import { parseQuality, stateOf } from './jobs';
import { BITRATES } from '../api/limits';

describe('formatting', () => {
  it('formats sizes and speeds', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(25 * 1024 * 1024)).toBe('25 MB');
    expect(formatBytes(undefined)).toBe('');
    expect(formatSpeed(2.5 * 1024 * 1024)).toBe('2.5 MB/s');
    expect(formatSpeed(0)).toBe('');
  });

  it('formats durations as m:ss or h:mm:ss, and leaves unknown ones empty', () => {
    expect(formatDuration(5.2)).toBe('0:05');
    expect(formatDuration(83.4)).toBe('1:23');
    expect(formatDuration(3723)).toBe('1:02:03');
    expect(formatDuration(Infinity)).toBe('');
    expect(formatDuration(NaN)).toBe('');
    expect(formatDuration(0)).toBe('');
  });

  it('formats dates from ISO strings and epoch seconds, and leaves garbage empty', () => {
    expect(formatDate('2026-11-27T18:00:00Z')).toMatch(/2026/);
    expect(formatDate(1_790_000_000)).toMatch(/2026/);
    expect(formatDate('not a date')).toBe('');
    expect(formatDate(null)).toBe('');
  });

  it('says how long is left, rounded to what an estimate can tell', () => {
    expect(formatEta(0)).toBe('less than 5 s left');
    expect(formatEta(4)).toBe('less than 5 s left');
    expect(formatEta(7)).toBe('about 7 s left');
    expect(formatEta(38)).toBe('about 40 s left');
    expect(formatEta(57)).toBe('about 55 s left');
    expect(formatEta(58)).toBe('about 1 min left');
    expect(formatEta(90)).toBe('about 2 min left');
    expect(formatEta(3599)).toBe('about 1 h left');
    expect(formatEta(5400)).toBe('about 1.5 h left');
    expect(formatEta(undefined)).toBe('');
    expect(formatEta(null)).toBe('');
    expect(formatEta(-1)).toBe('');
  });

  it('says when a conversion expires', () => {
    const now = Date.parse('2026-12-01T12:00:00Z');
    expect(formatExpiry('2026-12-01T15:00:00Z', now)).toBe('expires in 3 h');
    expect(formatExpiry('2026-12-01T12:25:00Z', now)).toBe('expires in 25 min');
    expect(formatExpiry('2026-12-05T12:00:00Z', now)).toBe('expires in 4 days');
    expect(formatExpiry('2026-12-01T12:00:30Z', now)).toBe('expires soon');
    expect(formatExpiry('2026-12-01T11:00:00Z', now)).toBe('expires soon');
    expect(formatExpiry(undefined, now)).toBe('');
    expect(formatExpiry('not a date', now)).toBe('');
  });

  it('names the MP3 after the video', () => {
    expect(mp3NameFor('holiday.video.mp4')).toBe('holiday.video.mp3');
    expect(mp3NameFor('clip')).toBe('clip.mp3');
    expect(mp3NameFor('')).toBe('audio.mp3');
  });

  it('recognises MP4 files by type or extension', () => {
    expect(isMp4(new File(['x'], 'a.mp4', { type: 'video/mp4' }))).toBe(true);
    expect(isMp4(new File(['x'], 'A.MP4', { type: '' }))).toBe(true);
    expect(isMp4(new File(['x'], 'a.mov', { type: 'video/quicktime' }))).toBe(false);
    expect(isMp4(new File(['x'], 'a.mp4', { type: 'text/plain' }))).toBe(false);
    expect(isMp4(new File(['x'], 'notes.txt', { type: 'text/plain' }))).toBe(false);
    expect(isMp4(null)).toBe(false);
  });
});

describe('jobs', () => {
  it('reads the state of a /status answer', () => {
    expect(stateOf(null)).toBe('queued');
    expect(stateOf({ status: 'processing' })).toBe('processing');
    expect(stateOf({ status: 'processing', state: 'queued' })).toBe('queued');
    expect(stateOf({ status: 'completed', mp3_fid: 'a' })).toBe('completed');
    expect(stateOf({ status: 'failed', error: 'x' })).toBe('failed');
  });

  it('parses the quality option', () => {
    expect(parseQuality('')).toBeNull();
    expect(parseQuality('cbr:192')).toEqual({ bitrate: 192 });
    expect(parseQuality('vbr:0')).toEqual({ vbrQuality: 0 });
  });

  it('takes only the bitrates the gateway documents', () => {
    // The gateway's OpenAPI enum, through schema.gen.ts: 64 to 320 kb/s in MP3's steps.
    expect(BITRATES).toEqual([64, 96, 128, 160, 192, 224, 256, 320]);
    expect(parseQuality('cbr:320')).toEqual({ bitrate: 320 });
    expect(parseQuality('cbr:100')).toBeNull();
    expect(parseQuality('cbr:')).toBeNull();
    expect(parseQuality('vbr:11')).toBeNull();
  });
});
