// Human-readable sizes, speeds and dates for the pages.

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

/** 1536 -> "1.5 KB"; decimal-free below 10 units of the next size up. */
export function formatBytes(bytes: number | null | undefined): string {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0) return '';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit] ?? ''}`;
}

/** Bytes per second -> "2.4 MB/s". */
export function formatSpeed(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '';
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** An ISO date or epoch value -> a short local date and time, or '' when unparsable. */
export function formatDate(value: string | number | null | undefined): string {
  if (value === null || value === undefined || value === '') return '';
  const date = typeof value === 'number' ? new Date(value < 1e12 ? value * 1000 : value) : new Date(value);
  if (Number.isNaN(date.getTime())) return '';
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/**
 * Seconds left (the gateway's `eta_secs`) -> "about 40 s left", "about 2 min left",
 * "about 1.5 h left", "less than 5 s left"; '' when unknown.
 */
export function formatEta(secs: number | null | undefined): string {
  if (typeof secs !== 'number' || !Number.isFinite(secs) || secs < 0) return '';
  if (secs < 5) return 'less than 5 s left';
  // Below 10 s in seconds, then in steps of 5 s: an estimate is not more precise than that.
  if (secs < 57.5) return `about ${secs < 10 ? Math.round(secs) : Math.round(secs / 5) * 5} s left`;
  const minutes = Math.round(secs / 60);
  if (minutes < 60) return `about ${minutes} min left`;
  return `about ${Math.round((secs / 3600) * 2) / 2} h left`;
}

/**
 * When a conversion will be removed (the gateway's `expires_at`, RFC 3339) -> "expires in 3 h",
 * "expires in 25 min", "expires in 4 days", "expires soon"; '' when there is no expiry.
 */
export function formatExpiry(value: string | null | undefined, now = Date.now()): string {
  if (!value) return '';
  const at = new Date(value).getTime();
  if (Number.isNaN(at)) return '';
  const secs = (at - now) / 1000;
  // Past it, the next sweep removes it.
  if (secs < 60) return 'expires soon';
  const minutes = Math.round(secs / 60);
  if (minutes < 60) return `expires in ${minutes} min`;
  const hours = Math.round(secs / 3600);
  if (hours < 48) return `expires in ${hours} h`;
  return `expires in ${Math.round(secs / 86400)} days`;
}

/** "holiday.video.mp4" -> "holiday.video.mp3"; what the gateway names the MP3 too. */
export function mp3NameFor(videoName: string | null | undefined): string {
  const base = (videoName || 'audio').replace(/\.[^./\\]*$/, '');
  return `${base || 'audio'}.mp3`;
}

/** True when the file looks like an MP4 by type or extension (browsers leave type empty for some). */
export function isMp4(file: { name?: string; type: string } | null | undefined): boolean {
  if (!file) return false;
  if (file.type === 'video/mp4') return true;
  return /\.(mp4|m4v)$/i.test(file.name || '') && (file.type === '' || file.type.startsWith('video/'));
}

/** Seconds -> "0:05", "12:34" or "1:02:03"; '' when not a finite positive number. */
export function formatDuration(seconds: number | null): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) return '';
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}
