const LOOK: Record<string, [string, string]> = {
  queued: ['Queued', 'bg-slate-100 text-slate-700 ring-slate-300'],
  processing: ['Converting', 'bg-sky-100 text-sky-800 ring-sky-300'],
  completed: ['Done', 'bg-emerald-100 text-emerald-800 ring-emerald-300'],
  failed: ['Failed', 'bg-red-100 text-red-800 ring-red-300'],
};

/** The state of a job as a coloured word (the word carries the meaning, not the colour). */
export default function StateBadge({ state }: { state: string }) {
  const [text, classes] = LOOK[state] ?? [state || 'Unknown', 'bg-slate-100 text-slate-700 ring-slate-300'];
  return (
    <span className={`inline-flex items-center rounded-full px-2.5 py-0.5 text-xs font-semibold ring-1 ring-inset ${classes}`}>
      {text}
    </span>
  );
}
