import { describe, expect, it } from 'vitest';
import { formatBytes, formatDate, formatSpeed, isMp4, mp3NameFor } from './format.js';
import { parseQuality, stateOf } from './jobs.js';

describe('formatting', () => {
  it('formats sizes and speeds', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(25 * 1024 * 1024)).toBe('25 MB');
    expect(formatBytes(undefined)).toBe('');
    expect(formatSpeed(2.5 * 1024 * 1024)).toBe('2.5 MB/s');
    expect(formatSpeed(0)).toBe('');
  });

  it('formats dates from ISO strings and epoch seconds, and leaves garbage empty', () => {
    expect(formatDate('2026-11-27T18:00:00Z')).toMatch(/2026/);
    expect(formatDate(1_790_000_000)).toMatch(/2026/);
    expect(formatDate('not a date')).toBe('');
    expect(formatDate(null)).toBe('');
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
});
