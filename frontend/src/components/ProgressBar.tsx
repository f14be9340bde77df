/** A labelled progress bar (0-100); `indeterminate` while the percentage is unknown. */
interface ProgressBarProps {
  label: string;
  value: number | null | undefined;
  detail?: string;
  tone?: 'indigo' | 'emerald' | 'red';
  indeterminate?: boolean;
}

export default function ProgressBar({ label, value, detail, tone = 'indigo', indeterminate = false }: ProgressBarProps) {
  const percent = Math.max(0, Math.min(100, Math.round(value ?? 0)));
  const bar = tone === 'emerald' ? 'bg-emerald-500' : tone === 'red' ? 'bg-red-500' : 'bg-indigo-600';
  return (
    <div className="space-y-1">
      <div className="flex items-baseline justify-between gap-2 text-sm">
        <span className="font-medium text-slate-700">{label}</span>
        <span className="tabular-nums text-slate-600">{detail ?? (indeterminate ? '' : `${percent}%`)}</span>
      </div>
      <div
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={indeterminate ? undefined : percent}
        aria-valuetext={detail ?? (indeterminate ? 'waiting' : `${percent}%`)}
        className="h-3 w-full overflow-hidden rounded-full bg-slate-200"
      >
        <div
          className={`h-full rounded-full ${bar} transition-[width] duration-300 ${indeterminate ? 'w-1/3 animate-pulse' : ''}`}
          style={indeterminate ? undefined : { width: `${percent}%` }}
        />
      </div>
    </div>
  );
}
