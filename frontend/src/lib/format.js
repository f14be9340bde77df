// Human-readable sizes, speeds and dates for the pages.

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

/** 1536 -> "1.5 KB"; decimal-free below 10 units of the next size up. */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** Bytes per second -> "2.4 MB/s". */
export function formatSpeed(bytesPerSecond) {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '';
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** An ISO date or epoch value -> a short local date and time, or '' when unparsable. */
export function formatDate(value) {
  if (value === null || value === undefined || value === '') return '';
  const date = typeof value === 'number' ? new Date(value < 1e12 ? value * 1000 : value) : new Date(value);
  if (Number.isNaN(date.getTime())) return '';
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "holiday.video.mp4" -> "holiday.video.mp3"; what the gateway names the MP3 too. */
export function mp3NameFor(videoName) {
  const base = (videoName || 'audio').replace(/\.[^./\\]*$/, '');
  return `${base || 'audio'}.mp3`;
}

/** True when the file looks like an MP4 by type or extension (browsers leave type empty for some). */
export function isMp4(file) {
  if (!file) return false;
  if (file.type === 'video/mp4') return true;
  return /\.(mp4|m4v)$/i.test(file.name || '') && (file.type === '' || file.type.startsWith('video/'));
}
