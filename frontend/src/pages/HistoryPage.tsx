import { useEffect, useState } from 'react';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'react-router-dom';
import { useAuth } from '../auth/AuthContext';
import Alert from '../components/Alert';
import AudioPreview from '../components/AudioPreview';
import Button from '../components/Button';
import DownloadButton from '../components/DownloadButton';
import ProgressBar from '../components/ProgressBar';
import StateBadge from '../components/StateBadge';
import { formatBytes, formatDate, formatExpiry } from '../lib/format';
import type { JobState, JobView, JobsPage } from '../api/client';
import { ApiError, messageOf } from '../api/errors';
import { queryKeys } from '../api/queries';

const PER_PAGE = 20;
const REFRESH_MS = 3000;
const ACTIVE: ReadonlySet<JobState> = new Set<JobState>(['queued', 'processing']);

/** Whether a page shows a job that is still running, so asking again soon shows progress. */
const anyActive = (body: JobsPage | undefined) => (body?.jobs ?? []).some((job) => ACTIVE.has(job.state || job.status));

/** The original gateway has no /jobs (its 404): there is no history to show, and nothing went wrong. */
const isUnsupported = (error: unknown) => error instanceof ApiError && error.status === 404;

function JobRow({ job, onDelete }: { job: JobView; onDelete: (videoFid: string) => Promise<void> }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // The player loads only when asked: a page of 20 rows does not fetch 20 files' metadata.
  const [playing, setPlaying] = useState(false);
  const state = job.state || job.status;
  const active = state === 'queued' || state === 'processing';

  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await onDelete(job.video_fid);
    } catch (caught) {
      setError(messageOf(caught));
      setBusy(false);
      setConfirming(false);
    }
  };

  return (
    <li className="space-y-3 px-4 py-4 sm:px-5" data-testid="job-row" aria-label={job.filename}>
      <div className="flex flex-wrap items-start justify-between gap-x-4 gap-y-2">
        <div className="min-w-0">
          <p className="truncate font-medium text-slate-900" title={job.filename}>
            {job.filename || 'Untitled video'}
          </p>
          <p className="text-xs text-slate-500">
            {[formatDate(job.created_at), formatBytes(job.size), formatExpiry(job.expires_at)].filter(Boolean).join(' · ')}
          </p>
        </div>
        <StateBadge state={state} />
      </div>
      {active && (
        <ProgressBar
          label={`Conversion of ${job.filename}`}
          value={job.progress ?? 0}
          indeterminate={state === 'queued'}
          detail={state === 'queued' ? 'Queued' : `${Math.round(job.progress ?? 0)}%`}
        />
      )}
      {state === 'failed' && job.error && <p className="text-sm text-red-700">Reason: {job.error}</p>}
      <div className="flex flex-wrap items-center gap-2">
        {state === 'completed' && job.mp3_fid && <DownloadButton mp3Fid={job.mp3_fid} videoName={job.filename} variant="secondary" compact />}
        {state === 'completed' && job.mp3_fid && !playing && (
          <Button variant="ghost" onClick={() => setPlaying(true)} className="min-h-9 px-3 py-1.5" aria-label={`Play ${job.filename}`}>
            Play
          </Button>
        )}
        {confirming ? (
          <>
            <span className="text-sm text-slate-700">Delete the video and its MP3?</span>
            <Button variant="danger" onClick={remove} disabled={busy} className="min-h-9 px-3 py-1.5" aria-label={`Confirm delete ${job.filename}`}>
              {busy ? 'Deleting…' : 'Yes, delete'}
            </Button>
            <Button variant="ghost" onClick={() => setConfirming(false)} disabled={busy} className="min-h-9 px-3 py-1.5">
              Cancel
            </Button>
          </>
        ) : (
          <Button variant="ghost-danger" onClick={() => setConfirming(true)} className="min-h-9 px-3 py-1.5" aria-label={`Delete ${job.filename}`}>
            Delete
          </Button>
        )}
      </div>
      {playing && state === 'completed' && job.mp3_fid && <AudioPreview mp3Fid={job.mp3_fid} videoName={job.filename} />}
      {error && (
        <p role="alert" className="text-sm text-red-700">
          {error}
        </p>
      )}
    </li>
  );
}

/**
 * The user's conversions, newest first: status, download, delete; refreshes every 3 s while any is
 * running (or while the last try failed). Pages are TanStack queries keyed by page number, so an
 * answer that arrives after the user moved to another page is kept for that page, never shown here.
 */
export default function HistoryPage() {
  const { api, token } = useAuth();
  const queryClient = useQueryClient();
  const [page, setPage] = useState(1);
  const [notice, setNotice] = useState<string | null>(null);
  const key = queryKeys.jobs(token, page, PER_PAGE);

  const query = useQuery({
    queryKey: key,
    queryFn: ({ signal }) => {
      if (!api) throw new Error('not signed in');
      return api.jobs(page, PER_PAGE, signal);
    },
    enabled: api !== null,
    // The previous page stays on screen until the next one arrives, as it always did.
    placeholderData: keepPreviousData,
    refetchInterval: (current) => {
      const { error, data } = current.state;
      if (error) return isUnsupported(error) || (error instanceof ApiError && error.status === 401) ? false : REFRESH_MS;
      return anyActive(data) ? REFRESH_MS : false;
    },
  });

  useEffect(() => {
    document.title = 'History · Video to MP3';
  }, []);

  const unsupported = isUnsupported(query.error);
  const error = query.error && !unsupported ? messageOf(query.error) : null;
  const data = unsupported ? undefined : query.data;

  const remove = async (videoFid: string) => {
    if (!api) return;
    const job = data?.jobs.find((candidate) => candidate.video_fid === videoFid);
    await api.deleteJob(videoFid);
    // A refresh already under way would bring the row back.
    await queryClient.cancelQueries({ queryKey: key });
    queryClient.setQueryData<JobsPage>(key, (current) =>
      current && {
        ...current,
        jobs: current.jobs.filter((candidate) => candidate.video_fid !== videoFid),
        total: Math.max(0, current.total - 1),
      },
    );
    setNotice(`Deleted ${job?.filename || 'the conversion'}.`);
  };

  const jobs = data?.jobs ?? [];
  const total = data?.total ?? jobs.length;
  const pages = Math.max(1, Math.ceil(total / PER_PAGE));

  return (
    <div className="space-y-6">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div>
          <h1 className="text-2xl font-bold tracking-tight">History</h1>
          <p className="mt-1 text-sm text-slate-600">Your conversions, newest first.</p>
        </div>
        {!unsupported && (
          <Button variant="secondary" onClick={() => void query.refetch()}>
            Refresh
          </Button>
        )}
      </div>
      {unsupported && (
        <Alert kind="info">
          History needs the new gateway: this server keeps no list of conversions. Follow a conversion and download its
          MP3 on the{' '}
          <Link to="/convert" className="font-medium underline underline-offset-2">
            Convert
          </Link>{' '}
          page.
        </Alert>
      )}
      {error && <Alert kind="error">{error}</Alert>}
      {notice && <Alert kind="success">{notice}</Alert>}
      {data === undefined && !error && !unsupported && (
        <p className="text-sm text-slate-500" role="status">
          Loading…
        </p>
      )}
      {data !== undefined && jobs.length === 0 && (
        <div className="rounded-xl bg-white p-8 text-center shadow-sm ring-1 ring-slate-200">
          <p className="text-slate-700">No conversions yet.</p>
          <Link to="/convert" className="mt-2 inline-block font-semibold text-indigo-700 underline-offset-2 hover:underline">
            Convert your first video
          </Link>
        </div>
      )}
      {jobs.length > 0 && (
        <ul aria-label="Conversions" className="divide-y divide-slate-200 overflow-hidden rounded-xl bg-white shadow-sm ring-1 ring-slate-200">
          {jobs.map((job) => (
            <JobRow key={job.video_fid} job={job} onDelete={remove} />
          ))}
        </ul>
      )}
      {pages > 1 && (
        <nav aria-label="Pages" className="flex items-center justify-between gap-3">
          <Button variant="secondary" disabled={page <= 1} onClick={() => setPage((p) => p - 1)}>
            Newer
          </Button>
          <span className="text-sm text-slate-600">
            Page {page} of {pages}
          </span>
          <Button variant="secondary" disabled={page >= pages} onClick={() => setPage((p) => p + 1)}>
            Older
          </Button>
        </nav>
      )}
    </div>
  );
}
