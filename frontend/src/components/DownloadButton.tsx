import { useState } from 'react';
import { useAuth } from '../auth/AuthContext';
import { messageOf } from '../api/errors';
import { mp3NameFor } from '../lib/format';
import Button, { type ButtonVariant } from './Button';

/** One click: fetches the MP3 with the JWT and saves it under the video's name. */
interface DownloadButtonProps {
  mp3Fid: string;
  videoName: string;
  variant?: ButtonVariant;
  compact?: boolean;
}

export default function DownloadButton({ mp3Fid, videoName, variant = 'primary', compact = false }: DownloadButtonProps) {
  const { api } = useAuth();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const name = mp3NameFor(videoName);

  const download = async () => {
    setBusy(true);
    setError(null);
    try {
      await api?.download(mp3Fid, name);
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <span className="inline-flex flex-col items-start gap-1">
      <Button variant={variant} onClick={download} disabled={busy} aria-label={`Download ${name}`} className={compact ? 'min-h-9 px-3 py-1.5' : ''}>
        <svg aria-hidden="true" viewBox="0 0 20 20" className="h-4 w-4" fill="currentColor">
          <path d="M10.75 2.75a.75.75 0 0 0-1.5 0v8.614L6.295 8.235a.75.75 0 1 0-1.09 1.03l4.25 4.5a.75.75 0 0 0 1.09 0l4.25-4.5a.75.75 0 0 0-1.09-1.03l-2.955 3.129V2.75Z" />
          <path d="M3.5 12.75a.75.75 0 0 0-1.5 0v2.5A2.75 2.75 0 0 0 4.75 18h10.5A2.75 2.75 0 0 0 18 15.25v-2.5a.75.75 0 0 0-1.5 0v2.5c0 .69-.56 1.25-1.25 1.25H4.75c-.69 0-1.25-.56-1.25-1.25v-2.5Z" />
        </svg>
        {busy ? 'Downloading…' : compact ? 'Download' : `Download ${name}`}
      </Button>
      {error && (
        <span role="alert" className="text-xs text-red-700">
          {error}
        </span>
      )}
    </span>
  );
}
