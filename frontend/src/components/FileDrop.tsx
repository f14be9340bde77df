import { useId, useState, type DragEvent } from 'react';
import { formatBytes, isMp4 } from '../lib/format';

/** Why files were left out: one sentence naming them. */
function rejectionMessage(names: string[]): string {
  if (names.length === 1) return `"${names[0]}" is not an MP4 video. Choose a file ending in .mp4.`;
  const quoted = names.map((name) => `"${name}"`);
  return `${quoted.slice(0, -1).join(', ')} and ${quoted.at(-1)} are not MP4 videos; they were left out.`;
}

/**
 * Choose MP4s with the file picker (a real, focusable <input type="file" multiple>) or drop them
 * on the area. Calls `onSelect(files)` with the MP4s among them (possibly none) and, when some
 * were not MP4s, `onReject(message)` after it.
 */
interface FileDropProps {
  files?: File[];
  onSelect: (files: File[]) => void;
  onReject: (message: string) => void;
  disabled?: boolean;
}

export default function FileDrop({ files = [], onSelect, onReject, disabled = false }: FileDropProps) {
  const id = useId();
  const [dragging, setDragging] = useState(false);

  const take = (candidates: FileList | null | undefined) => {
    const list = Array.from(candidates ?? []);
    if (list.length === 0) return;
    const accepted = list.filter(isMp4);
    const rejected = list.filter((file) => !isMp4(file)).map((file) => file.name);
    onSelect(accepted);
    if (rejected.length) onReject(rejectionMessage(rejected));
  };

  const onDrop = (event: DragEvent<HTMLDivElement>) => {
    event.preventDefault();
    setDragging(false);
    if (disabled) return;
    take(event.dataTransfer.files);
  };

  const total = files.reduce((sum, file) => sum + file.size, 0);

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
        (or several) or drag and drop them here
      </p>
      <input
        id={id}
        type="file"
        accept="video/mp4,.mp4,.m4v"
        multiple
        disabled={disabled}
        className="sr-only"
        aria-describedby={`${id}-chosen`}
        onChange={(event) => {
          take(event.target.files);
          // Let the same file be chosen again after "convert another".
          event.target.value = '';
        }}
      />
      <p id={`${id}-chosen`} className="mt-2 text-sm text-slate-500" aria-live="polite">
        {files.length === 1 ? (
          <>
            Selected: <span className="font-medium text-slate-800">{files[0]?.name}</span> ({formatBytes(files[0]?.size)})
          </>
        ) : files.length > 1 ? (
          <>
            Selected: {files.length} videos ({formatBytes(total)}):{' '}
            <span className="font-medium text-slate-800">{files.map((file) => file.name).join(', ')}</span>
          </>
        ) : (
          'No file chosen yet.'
        )}
      </p>
    </div>
  );
}
