import { useEffect, useState } from 'react';
import { useAuth } from '../auth/AuthContext';
import { ApiError } from '../api/errors';
import { formatDuration, mp3NameFor } from '../lib/format';

/**
 * Plays a converted MP3 in the page: an `<audio>` element streaming /download with HTTP Range.
 * An element cannot send the Authorization header and the token must not go into its URL (logs,
 * history, Referer), so the gateway first sets an HttpOnly cookie from the token
 * (`api.enableMediaCookie`), which /download alone accepts (docs/security.md, "Preview").
 * Shows the duration once the browser has read the file's metadata. Against a gateway without
 * the cookie endpoint (the original: 404) it shows nothing.
 */
export default function AudioPreview({ mp3Fid, videoName }: { mp3Fid: string; videoName: string }) {
  const { api } = useAuth();
  const [phase, setPhase] = useState<'preparing' | 'ready' | 'unsupported' | 'failed'>('preparing');
  const [duration, setDuration] = useState<number | null>(null);
  const [playError, setPlayError] = useState(false);
  const name = mp3NameFor(videoName);

  useEffect(() => {
    if (!api) return undefined;
    let live = true;
    api.enableMediaCookie().then(
      () => live && setPhase('ready'),
      (error: unknown) => live && setPhase(error instanceof ApiError && error.status === 404 ? 'unsupported' : 'failed'),
    );
    return () => {
      live = false;
    };
  }, [api]);

  if (phase === 'unsupported') return null;
  if (phase === 'failed') return <p className="text-xs text-slate-500">The preview is unavailable right now; the download still works.</p>;

  return (
    <figure className="space-y-1" data-testid="audio-preview">
      {/* Sound converted from the user's own video: there are no captions to offer. */}
      {/* eslint-disable-next-line jsx-a11y/media-has-caption */}
      <audio
        controls
        preload="metadata"
        className="w-full max-w-md"
        aria-label={`Preview of ${name}`}
        src={phase === 'ready' ? api?.mediaUrl(mp3Fid) : undefined}
        onLoadedMetadata={(event) => setDuration(event.currentTarget.duration)}
        onDurationChange={(event) => setDuration(event.currentTarget.duration)}
        onError={() => setPlayError(true)}
      />
      <figcaption className="text-xs text-slate-600" aria-live="polite">
        {playError
          ? 'This browser cannot play the preview; download the MP3 instead.'
          : formatDuration(duration)
            ? `Duration ${formatDuration(duration)}`
            : 'Loading the preview…'}
      </figcaption>
    </figure>
  );
}
