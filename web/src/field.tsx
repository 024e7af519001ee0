/** A labelled input with its error (or hint) below it, wired for screen readers. */
import type { ComponentChildren } from 'preact';

export interface TextFieldProps {
  id: string;
  label: ComponentChildren;
  value: string;
  onValue: (v: string) => void;
  type?: 'text' | 'email' | 'password' | 'date';
  error?: string;
  /** shown below the field when there is no error */
  hint?: string;
  /** when several fields share one error shown elsewhere: its id */
  describedBy?: string;
  autoComplete?: string;
  placeholder?: string;
  maxLength?: number;
  autoFocus?: boolean;
  testid?: string;
  children?: ComponentChildren;
}

export function TextField(p: TextFieldProps) {
  const below = p.error ? `${p.id}-error` : p.hint ? `${p.id}-hint` : undefined;
  return (
    <div class="field">
      {p.children}
      <label for={p.id}>{p.label}</label>
      <input
        id={p.id}
        name={p.id}
        type={p.type ?? 'text'}
        autoComplete={p.autoComplete}
        placeholder={p.placeholder}
        maxLength={p.maxLength}
        value={p.value}
        onInput={(e) => p.onValue((e.target as HTMLInputElement).value)}
        aria-invalid={p.error || p.describedBy ? 'true' : undefined}
        aria-describedby={p.describedBy ?? below}
        autoFocus={p.autoFocus}
      />
      {p.error ? (
        <p id={`${p.id}-error`} class="field-error" role="alert" data-testid={p.testid}>
          {p.error}
        </p>
      ) : p.hint ? (
        <p id={`${p.id}-hint`} class="muted small">
          {p.hint}
        </p>
      ) : null}
    </div>
  );
}
