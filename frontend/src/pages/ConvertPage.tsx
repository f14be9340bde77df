import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link } from 'react-router-dom';
import { useAuth } from '../auth/AuthContext';
import { loadCurrentBatch, loadCurrentJob, saveCurrentBatch, saveCurrentJob, type CurrentJob } from '../auth/token';
import type { UploadProgress } from '../api/client';
import { ApiError, isAbortError, messageOf } from '../api/errors';
import Alert from '../components/Alert';
import BatchList, { type BatchItem } from '../components/BatchList';
import Button from '../components/Button';
import FileDrop from '../components/FileDrop';
import JobProgress from '../components/JobProgress';
import ProgressBar from '../components/ProgressBar';
import QualitySelect from '../components/QualitySelect';
import { parseQuality } from '../lib/jobs';
import { formatBytes, formatSpeed } from '../lib/format';

/** The uploaded files of a batch as the page remembers them: `[{videoFid, filename}]`. */
function uploadedOf(items: BatchItem[]): CurrentJob[] {
  return items.flatMap((item) => (item.phase === 'uploaded' ? [{ videoFid: item.videoFid, filename: item.name }] : []));
}

/** A remembered batch as list items (all uploaded: the conversions are followed again). */
function restoreBatch(): BatchItem[] | null {
  return loadCurrentBatch()?.map((job, index) => ({ key: `${index}-${job.videoFid}`, name: job.filename, phase: 'uploaded' as const, videoFid: job.videoFid })) ?? null;
}

/**
 * Choose MP4s, pick a quality, upload with a progress bar, then follow the conversion live. One
 * file shows as one conversion; several become a batch: uploaded one after another, each with its
 * own upload bar, then its conversion and download button; a failure does not stop the others.
 */
export default function ConvertPage() {
  const { api } = useAuth();
  const [files, setFiles] = useState<File[]>([]);
  const [quality, setQuality] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [upload, setUpload] = useState<UploadProgress | null>(null); // while uploading
  // {videoFid, filename} once uploaded; kept in sessionStorage so leaving the page and coming back
  // (History, a reload) shows the same conversion again.
  const [job, setJobState] = useState(loadCurrentJob);
  // The batch's files while it runs and after (see BatchList), or null; its uploaded files are
  // kept in sessionStorage like `job`.
  const [batch, setBatchState] = useState(restoreBatch);
  const abortRef = useRef<(() => void) | null>(null);
  const cancelledRef = useRef(false);
  const setJob = (next: CurrentJob | null) => {
    saveCurrentJob(next);
    setJobState(next);
  };
  const updateBatch = (change: BatchItem[] | null | ((current: BatchItem[] | null) => BatchItem[] | null)) => {
    setBatchState((current) => {
      const next = typeof change === 'function' ? change(current) : change;
      saveCurrentBatch(next ? uploadedOf(next) : null);
      return next;
    });
  };
  const updateItem = (index: number, patch: Partial<Omit<BatchItem, 'phase'>> & ({ phase?: never } | Pick<BatchItem, 'phase'>)) =>
    updateBatch((items) => items?.map((item, i) => (i === index ? ({ ...item, ...patch } as BatchItem) : item)) ?? items);
  const headingRef = useRef<HTMLHeadingElement>(null);

  useEffect(() => {
    document.title = 'Convert · Video to MP3';
  }, []);

  // Cancel a running upload (and the rest of a batch) when leaving the page.
  useEffect(
    () => () => {
      cancelledRef.current = true;
      abortRef.current?.();
    },
    [],
  );

  /** Uploads the files one after another; each failure is noted on its file, and the next goes on. */
  const startBatch = async (chosen: File[]) => {
    if (!api) return;
    const options = parseQuality(quality);
    cancelledRef.current = false;
    setJob(null);
    updateBatch(chosen.map((chosenFile, index) => ({ key: `${index}-${chosenFile.name}`, name: chosenFile.name, size: chosenFile.size, phase: 'waiting' })));
    for (const [index, chosenFile] of chosen.entries()) {
      if (cancelledRef.current) {
        updateItem(index, { phase: 'cancelled' });
        continue;
      }
      updateItem(index, { phase: 'uploading', upload: { loaded: 0, total: chosenFile.size, bytesPerSecond: 0 } });
      const { promise, abort } = api.upload(chosenFile, options, (progress) => updateItem(index, { upload: progress }));
      abortRef.current = abort;
      try {
        const videoFid = await promise;
        updateItem(index, { phase: 'uploaded', videoFid } as BatchItem);
      } catch (caught) {
        if (isAbortError(caught)) {
          cancelledRef.current = true;
          updateItem(index, { phase: 'cancelled' });
        } else {
          updateItem(index, { phase: 'failed', error: messageOf(caught) });
          // A refused token signs out (the app shows the login page): nothing more can upload.
          if (caught instanceof ApiError && caught.status === 401) cancelledRef.current = true;
        }
      } finally {
        abortRef.current = null;
      }
    }
  };

  const start = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (files.length === 0) {
      setError('Choose an MP4 video first.');
      return;
    }
    setError(null);
    if (files.length > 1) {
      const chosen = files;
      setFiles([]);
      await startBatch(chosen);
      return;
    }
    const [file] = files;
    if (!file || !api) return;
    setUpload({ loaded: 0, total: file.size, bytesPerSecond: 0 });
    const { promise, abort } = api.upload(file, parseQuality(quality), setUpload);
    abortRef.current = abort;
    try {
      const videoFid = await promise;
      setJob({ videoFid, filename: file.name });
    } catch (caught) {
      if (!isAbortError(caught)) setError(messageOf(caught));
    } finally {
      abortRef.current = null;
      setUpload(null);
    }
  };

  const another = () => {
    setJob(null);
    updateBatch(null);
    setFiles([]);
    setError(null);
    headingRef.current?.focus();
  };

  const cancelBatch = () => {
    cancelledRef.current = true;
    abortRef.current?.();
  };

  const uploading = upload !== null;
  const batchUploading = batch?.some((item) => item.phase === 'waiting' || item.phase === 'uploading') ?? false;
  const percent = upload && upload.total > 0 ? (upload.loaded / upload.total) * 100 : 0;

  return (
    <div className="space-y-6">
      <div>
        <h1 ref={headingRef} tabIndex={-1} className="text-2xl font-bold tracking-tight focus:outline-none">
          Convert a video to MP3
        </h1>
        <p className="mt-1 text-sm text-slate-600">
          Upload an MP4, or several at once; each audio track becomes an MP3 named after its video. Earlier conversions are in{' '}
          <Link to="/history" className="font-medium text-indigo-700 underline-offset-2 hover:underline">
            History
          </Link>
          .
        </p>
      </div>

      {batch ? (
        <div className="space-y-4">
          <p role="status" className="text-sm text-slate-700">
            {batchSummary(batch)}
          </p>
          <BatchList items={batch} />
          <div className="flex flex-wrap gap-3">
            {batchUploading ? (
              <Button variant="secondary" onClick={cancelBatch}>
                Cancel the remaining uploads
              </Button>
            ) : (
              <Button variant="secondary" onClick={another}>
                Convert more videos
              </Button>
            )}
          </div>
        </div>
      ) : job ? (
        <div className="space-y-4">
          <JobProgress key={job.videoFid} videoFid={job.videoFid} filename={job.filename} />
          <Button variant="secondary" onClick={another}>
            Convert another video
          </Button>
        </div>
      ) : (
        <form onSubmit={start} className="space-y-5 rounded-xl bg-white p-5 shadow-sm ring-1 ring-slate-200 sm:p-6" aria-label="Upload a video">
          <FileDrop
            files={files}
            disabled={uploading}
            onSelect={(chosen) => {
              setFiles(chosen);
              setError(null);
            }}
            onReject={setError}
          />
          <QualitySelect value={quality} onChange={setQuality} disabled={uploading} />
          {error && <Alert kind="error">{error}</Alert>}
          {uploading && (
            <ProgressBar
              label="Upload"
              value={percent}
              detail={`${Math.round(percent)}% · ${formatBytes(upload.loaded)} of ${formatBytes(upload.total)}${
                upload.bytesPerSecond ? ` · ${formatSpeed(upload.bytesPerSecond)}` : ''
              }`}
            />
          )}
          <div className="flex flex-wrap gap-3">
            <Button type="submit" disabled={uploading || files.length === 0}>
              {uploading ? 'Uploading…' : files.length > 1 ? `Upload and convert ${files.length} videos` : 'Upload and convert'}
            </Button>
            {uploading && (
              <Button variant="secondary" onClick={() => abortRef.current?.()}>
                Cancel upload
              </Button>
            )}
          </div>
        </form>
      )}
    </div>
  );
}

/** One sentence on where the batch stands, read out as it changes. */
function batchSummary(items: BatchItem[]): string {
  const count = (phase: BatchItem['phase']) => items.filter((item) => item.phase === phase).length;
  const total = items.length;
  const uploaded = count('uploaded');
  const failed = count('failed');
  const cancelled = count('cancelled');
  const parts = [`${uploaded} of ${total} ${total === 1 ? 'video' : 'videos'} uploaded`];
  if (failed) parts.push(`${failed} failed`);
  if (cancelled) parts.push(`${cancelled} cancelled`);
  const uploadingItem = items.find((item) => item.phase === 'uploading');
  if (uploadingItem) parts.push(`uploading ${uploadingItem.name}`);
  return `${parts.join(', ')}.`;
}
