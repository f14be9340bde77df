import { useId, useState } from 'react';
import { formatBytes, isMp4 } from '../lib/format.js';

/**
 * Choose an MP4 with the file picker (a real, focusable <input type="file">) or drop one on the area.
 * Calls `onSelect(file)` for an MP4 and `onReject(message)` for anything else.
 */
export default function FileDrop({ file, onSelect, onReject, disabled = false }) {
  const id = useId();
  const [dragging, setDragging] = useState(false);

  const take = (candidate) => {
    if (!candidate) return;
    if (isMp4(candidate)) onSelect(candidate);
    else onReject(`"${candidate.name}" is not an MP4 video. Choose a file ending in .mp4.`);
  };

  const onDrop = (event) => {
    event.preventDefault();
    setDragging(false);
    if (disabled) return;
    const files = event.dataTransfer?.files;
    if (files && files.length > 1) {
      onReject('Drop one video at a time.');
      return;
    }
    take(files?.[0]);
  };

  return (
    <div
      onDragOver={(event) => {
        event.preventDefault();
        if (!disabled) setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
      data-testid="drop-zone"
      className={`relative rounded-xl border-2 border-dashed px-4 py-8 text-center transition-colors focus-within:border-indigo-600 focus-within:ring-2 focus-within:ring-indigo-200 sm:py-12 ${
        dragging ? 'border-indigo-600 bg-indigo-50' : 'border-slate-300 bg-white'
      } ${disabled ? 'cursor-not-allowed bg-slate-50' : ''}`}
    >
      <svg aria-hidden="true" viewBox="0 0 24 24" className="mx-auto h-10 w-10 text-slate-400" fill="none" stroke="currentColor" strokeWidth="1.5">
        <path strokeLinecap="round" strokeLinejoin="round" d="M3 16.5v2.25A2.25 2.25 0 0 0 5.25 21h13.5A2.25 2.25 0 0 0 21 18.75V16.5m-13.5-9L12 3m0 0 4.5 4.5M12 3v13.5" />
      </svg>
      <p className="mt-3 text-sm text-slate-700">
        <label htmlFor={id} className="cursor-pointer font-semibold text-indigo-700 underline-offset-2 hover:underline">
          Choose an MP4 video
        </label>{' '}
        or drag and drop it here
      </p>
      <input
        id={id}
        type="file"
        accept="video/mp4,.mp4,.m4v"
        disabled={disabled}
        className="sr-only"
        aria-describedby={`${id}-chosen`}
        onChange={(event) => {
          take(event.target.files?.[0]);
          // Let the same file be chosen again after "convert another".
          event.target.value = '';
        }}
      />
      <p id={`${id}-chosen`} className="mt-2 text-sm text-slate-500" aria-live="polite">
        {file ? (
          <>
            Selected: <span className="font-medium text-slate-800">{file.name}</span> ({formatBytes(file.size)})
          </>
        ) : (
          'No file chosen yet.'
        )}
      </p>
    </div>
  );
}
