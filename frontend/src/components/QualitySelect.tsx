import { useId } from 'react';
import { BITRATES, VBR_LEVELS } from '../api/limits';

/** The optional MP3 quality: the server's default, a constant bitrate, or a VBR quality level. */
interface QualitySelectProps {
  value: string;
  onChange: (value: string) => void;
  disabled?: boolean;
}

export default function QualitySelect({ value, onChange, disabled = false }: QualitySelectProps) {
  const id = useId();
  return (
    <div className="space-y-1">
      <label htmlFor={id} className="block text-sm font-medium text-slate-800">
        MP3 quality <span className="font-normal text-slate-500">(optional)</span>
      </label>
      <select
        id={id}
        value={value}
        disabled={disabled}
        onChange={(event) => onChange(event.target.value)}
        className="block w-full rounded-lg border-0 bg-white px-3 py-2.5 text-slate-900 shadow-sm ring-1 ring-inset ring-slate-300 focus:ring-2 focus:ring-indigo-600 sm:max-w-xs"
      >
        <option value="">Standard (server default)</option>
        <optgroup label="Constant bitrate">
          {BITRATES.map((kbps) => (
            <option key={kbps} value={`cbr:${kbps}`}>
              {kbps} kb/s
            </option>
          ))}
        </optgroup>
        <optgroup label="Variable bitrate">
          {VBR_LEVELS.map(([level, text]) => (
            <option key={level} value={`vbr:${level}`}>
              VBR V{level} ({text})
            </option>
          ))}
        </optgroup>
      </select>
    </div>
  );
}
