import type { ReactNode } from 'react';

const STYLES = {
  error: 'border-red-300 bg-red-50 text-red-800',
  info: 'border-sky-300 bg-sky-50 text-sky-900',
  success: 'border-emerald-300 bg-emerald-50 text-emerald-900',
};

/** A message box; errors are announced at once by screen readers, the rest politely. */
export default function Alert({ kind = 'info', children }: { kind?: keyof typeof STYLES; children?: ReactNode }) {
  if (!children) return null;
  return (
    <div role={kind === 'error' ? 'alert' : 'status'} className={`rounded-lg border px-4 py-3 text-sm ${STYLES[kind]}`}>
      {children}
    </div>
  );
}
