import { useEffect, useRef, useState } from 'react';
import { Link } from 'react-router-dom';
import { useAuth } from '../auth/AuthContext.jsx';
import { loadCurrentJob, saveCurrentJob } from '../auth/token.js';
import Alert from '../components/Alert.jsx';
import Button from '../components/Button.jsx';
import FileDrop from '../components/FileDrop.jsx';
import JobProgress from '../components/JobProgress.jsx';
import ProgressBar from '../components/ProgressBar.jsx';
import QualitySelect from '../components/QualitySelect.jsx';
import { parseQuality } from '../lib/jobs.js';
import { formatBytes, formatSpeed } from '../lib/format.js';

/** Choose an MP4, pick a quality, upload with a progress bar, then follow the conversion live. */
export default function ConvertPage() {
  const { api } = useAuth();
  const [file, setFile] = useState(null);
  const [quality, setQuality] = useState('');
  const [error, setError] = useState(null);
  const [upload, setUpload] = useState(null); // {loaded, total, bytesPerSecond} while uploading
  // {videoFid, filename} once uploaded; kept in sessionStorage so leaving the page and coming back
  // (History, a reload) shows the same conversion again.
  const [job, setJobState] = useState(loadCurrentJob);
  const abortRef = useRef(null);
  const setJob = (next) => {
    saveCurrentJob(next);
    setJobState(next);
  };
  const headingRef = useRef(null);

  useEffect(() => {
    document.title = 'Convert · Video to MP3';
  }, []);

  // Cancel a running upload when leaving the page.
  useEffect(() => () => abortRef.current?.(), []);

  const start = async (event) => {
    event.preventDefault();
    if (!file) {
      setError('Choose an MP4 video first.');
      return;
    }
    setError(null);
    setUpload({ loaded: 0, total: file.size, bytesPerSecond: 0 });
    const { promise, abort } = api.upload(file, parseQuality(quality), setUpload);
    abortRef.current = abort;
    try {
      const videoFid = await promise;
      setJob({ videoFid, filename: file.name });
    } catch (caught) {
      if (caught?.name !== 'AbortError') setError(caught.message);
    } finally {
      abortRef.current = null;
      setUpload(null);
    }
  };

  const another = () => {
    setJob(null);
    setFile(null);
    setError(null);
    headingRef.current?.focus();
  };

  const uploading = upload !== null;
  const percent = upload && upload.total > 0 ? (upload.loaded / upload.total) * 100 : 0;

  return (
    <div className="space-y-6">
      <div>
        <h1 ref={headingRef} tabIndex={-1} className="text-2xl font-bold tracking-tight focus:outline-none">
          Convert a video to MP3
        </h1>
        <p className="mt-1 text-sm text-slate-600">
          Upload an MP4; the audio track becomes an MP3 named after the video. Earlier conversions are in{' '}
          <Link to="/history" className="font-medium text-indigo-700 underline-offset-2 hover:underline">
            History
          </Link>
          .
        </p>
      </div>

      {job ? (
        <div className="space-y-4">
          <JobProgress key={job.videoFid} videoFid={job.videoFid} filename={job.filename} />
          <Button variant="secondary" onClick={another}>
            Convert another video
          </Button>
        </div>
      ) : (
        <form onSubmit={start} className="space-y-5 rounded-xl bg-white p-5 shadow-sm ring-1 ring-slate-200 sm:p-6" aria-label="Upload a video">
          <FileDrop
            file={file}
            disabled={uploading}
            onSelect={(chosen) => {
              setFile(chosen);
              setError(null);
            }}
            onReject={(message) => {
              setFile(null);
              setError(message);
            }}
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
            <Button type="submit" disabled={uploading || !file}>
              {uploading ? 'Uploading…' : 'Upload and convert'}
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
