/**
 * `/invite#<token>`: the one-time link an admin gave (an invite or a password reset). The person
 * sets their name and password (the server's rules: at least 12 characters, not the email; its
 * 400 names the field) and is signed in. The token leaves the address bar at once.
 */
import { useState } from 'preact/hooks';
import { api, ApiError } from './api.js';
import { TextField } from './field.js';
import { AuthCard, signInError } from './login.js';

/** Read once per page load: the fragment is cleared right after. */
let linkToken: string | undefined;
export function takeInviteToken(): string | undefined {
  if (linkToken === undefined) {
    const t = location.hash.replace(/^#/, '').trim();
    if (t) {
      linkToken = decodeURIComponent(t);
      history.replaceState(null, '', location.pathname + location.search);
    }
  }
  return linkToken;
}

export function Invite({ onAccepted }: { onAccepted: () => void }) {
  const [token] = useState(takeInviteToken);
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [fieldErrors, setFieldErrors] = useState<{ name?: string; password?: string }>({});
  const [error, setError] = useState<string | undefined>(
    token ? undefined : 'This link is incomplete: open the whole link you were given.',
  );
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    if (!token) return;
    const local = {
      name: name.trim() ? undefined : 'Enter your name',
      password: password.length >= 12 ? undefined : 'Use at least 12 characters',
    };
    setFieldErrors(local);
    setError(undefined);
    if (local.name || local.password) return;
    setBusy(true);
    try {
      await api.acceptInvite({ token, name: name.trim(), password });
      onAccepted();
    } catch (err) {
      if (err instanceof ApiError && err.status === 400 && err.details.length) {
        setFieldErrors({ name: err.fieldMessage('name'), password: err.fieldMessage('password') });
        if (!err.fieldMessage('name') && !err.fieldMessage('password')) setError(err.message);
      } else {
        setError(signInError(err, 'This link is unknown, used or expired: ask an admin for a new one.'));
      }
    } finally {
      setBusy(false);
    }
  }

  return (
    <AuthCard testid="invite" onSubmit={(e) => void submit(e)}>
      <h1>Welcome to Hatch</h1>
      <p class="muted">Choose the name your team sees on your messages, and a password.</p>
      <TextField id="invite-name" label="Your name" autoComplete="name" value={name} onValue={setName} error={fieldErrors.name} autoFocus />
      <TextField
        id="invite-password"
        label="Password"
        type="password"
        autoComplete="new-password"
        value={password}
        onValue={setPassword}
        error={fieldErrors.password}
        hint="At least 12 characters, and not your email."
        testid="password-error"
      />
      {error ? (
        <p class="field-error" role="alert" data-testid="invite-error">
          {error}
        </p>
      ) : null}
      <button type="submit" class="btn btn-primary btn-block" disabled={busy || !token}>
        {busy ? 'Signing in…' : 'Set password and sign in'}
      </button>
    </AuthCard>
  );
}
