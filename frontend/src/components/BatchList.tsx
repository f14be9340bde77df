import JobProgress from './JobProgress';
import ProgressBar from './ProgressBar';
import { formatBytes, formatSpeed } from '../lib/format';
import type { UploadProgress } from '../api/client';

/** One file of a batch, from waiting to uploaded (then its conversion is followed) or not. */
export type BatchItem = {
  key: string;
  name: string;
  size?: number;
  upload?: UploadProgress;
  error?: string;
} & ({ phase: 'waiting' | 'uploading' | 'failed' | 'cancelled' } | { phase: 'uploaded'; videoFid: string });

const PHASE_WORDS: Record<string, [string, string]> = {
  waiting: ['Waiting', 'bg-slate-100 text-slate-700 ring-slate-300'],
  uploading: ['Uploading', 'bg-indigo-100 text-indigo-800 ring-indigo-300'],
  failed: ['Upload failed', 'bg-red-100 text-red-800 ring-red-300'],
  cancelled: ['Cancelled', 'bg-slate-100 text-slate-700 ring-slate-300'],
};

/** One file of the batch before its conversion starts: waiting, uploading, failed or cancelled. */
function PendingItem({ item }: { item: BatchItem }) {
  const [word, classes] = PHASE_WORDS[item.phase] ?? ['Waiting', 'bg-slate-100 text-slate-700 ring-slate-300'];
  const upload = item.upload;
  const percent = upload && upload.total > 0 ? (upload.loaded / upload.total) * 100 : 0;
  return (
    <section aria-label={item.name} className="space-y-3 rounded-xl bg-white p-5 shadow-sm ring-1 ring-slate-200 sm:p-6">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 className="min-w-0 truncate text-base font-semibold" title={item.name}>
          {item.name}
        </h2>
        <span className={`inline-flex items-center rounded-full px-2.5 py-0.5 text-xs font-semibold ring-1 ring-inset ${classes}`}>{word}</span>
      </div>
      {item.phase === 'waiting' && <p className="text-sm text-slate-600">{formatBytes(item.size)}; uploads after the files above it.</p>}
      {item.phase === 'uploading' && upload && (
        <ProgressBar
          label={`Upload of ${item.name}`}
          value={percent}
          detail={`${Math.round(percent)}% · ${formatBytes(upload.loaded)} of ${formatBytes(upload.total)}${
            upload.bytesPerSecond ? ` · ${formatSpeed(upload.bytesPerSecond)}` : ''
          }`}
        />
      )}
      {item.phase === 'failed' && (
        <p role="alert" className="text-sm text-red-700">
          The upload failed: {item.error}
        </p>
      )}
      {item.phase === 'cancelled' && <p className="text-sm text-slate-600">Not uploaded: the batch was cancelled.</p>}
    </section>
  );
}

/**
 * The files of a batch, in the order they upload: each shows its upload, then (once uploaded) its
 * live conversion and download button, or why it failed. `items`: `{key, name, size, phase,
 * upload?, videoFid?, error?}` with phase `waiting`, `uploading`, `uploaded`, `failed` or `cancelled`.
 */
export default function BatchList({ items }: { items: BatchItem[] }) {
  return (
    <ol className="space-y-4" aria-label="Videos of this batch">
      {items.map((item) => (
        <li key={item.key}>
          {item.phase === 'uploaded' ? (
            <JobProgress videoFid={item.videoFid} filename={item.name} barLabel={`Conversion of ${item.name}`} />
          ) : (
            <PendingItem item={item} />
          )}
        </li>
      ))}
    </ol>
  );
}
