import { useEffect, useId, useState } from 'react';
import { useAuth } from '../auth/AuthContext';
import AudioPreview from './AudioPreview';
import DownloadButton from './DownloadButton';
import ProgressBar from './ProgressBar';
import StateBadge from './StateBadge';
import { stateOf } from '../lib/jobs';
import { formatEta, formatExpiry } from '../lib/format';
import { WATCH_DEFAULTS, type JobStatus } from '../api/client';
import { messageOf } from '../api/errors';

/**
 * Live conversion progress of one upload, then its download (or the reason it failed).
 * `barLabel` names the progress bar (several on one page need different names).
 */
export default function JobProgress({ videoFid, filename, barLabel = 'Conversion' }: { videoFid: string; filename: string; barLabel?: string }) {
  const { api } = useAuth();
  const headingId = useId();
  const [status, setStatus] = useState<JobStatus | null>(null);
  const [transport, setTransport] = useState<'stream' | 'polling' | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (!api) return undefined;
    const controller = new AbortController();
    api
      .watch(videoFid, { onUpdate: setStatus, onTransport: setTransport, signal: controller.signal })
      .catch((caught: unknown) => {
        if (!controller.signal.aborted) setError(messageOf(caught));
      });
    return () => controller.abort();
  }, [api, videoFid]);

  const state = stateOf(status);
  // The original gateway's /status says only "processing", without a progress number.
  const measured = typeof status?.progress === 'number';
  const progress = status?.progress ?? 0;
  // Absent from the original gateway and while nothing has been measured yet.
  const eta = formatEta(status?.eta_secs);
  const expiry = formatExpiry(status?.expires_at);
  const running = state === 'queued' ? 'Waiting for a converter…' : measured ? `${Math.round(progress)}%` : 'Converting…';

  return (
    <section aria-labelledby={headingId} className="space-y-4 rounded-xl bg-white p-5 shadow-sm ring-1 ring-slate-200 sm:p-6">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 id={headingId} className="min-w-0 truncate text-base font-semibold" title={filename}>
          {filename}
        </h2>
        <span aria-live="polite" data-testid="job-state">
          <StateBadge state={state} />
        </span>
      </div>
      {(state === 'queued' || state === 'processing') && (
        <>
          <ProgressBar
            label={barLabel}
            value={progress}
            indeterminate={state === 'queued' || !measured}
            detail={eta ? `${running} · ${eta}` : running}
          />
          {transport === 'polling' && <p className="text-xs text-slate-500">Live updates unavailable; checking every {WATCH_DEFAULTS.pollMs / 1000} seconds.</p>}
        </>
      )}
      {state === 'completed' && status?.mp3_fid && (
        <div className="space-y-3">
          <ProgressBar label={barLabel} value={100} tone="emerald" detail="Done" />
          <AudioPreview mp3Fid={status.mp3_fid} videoName={filename} />
          <DownloadButton mp3Fid={status.mp3_fid} videoName={filename} />
        </div>
      )}
      {expiry && (state === 'completed' || state === 'failed') && (
        <p className="text-xs text-slate-500" data-testid="job-expiry">
          {expiry.charAt(0).toUpperCase() + expiry.slice(1)}: the video and its MP3 are then removed.
        </p>
      )}
      {state === 'failed' && (
        <p role="alert" className="text-sm text-red-700">
          The conversion failed: {status?.error || 'no reason was given'}.
        </p>
      )}
      {error && (
        <p role="alert" className="text-sm text-red-700">
          {error}
        </p>
      )}
    </section>
  );
}
