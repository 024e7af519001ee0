import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { api, ApiError } from './api.js';
import { TextField } from './field.js';

/** The card of the sign-in and invite pages: the brand above a form. */
export function AuthCard({ testid, onSubmit, children }: { testid: string; onSubmit: (e: Event) => void; children: ComponentChildren }) {
  return (
    <main class="login">
      <form class="login-card" onSubmit={onSubmit} noValidate data-testid={testid}>
        <div class="brand brand-lg">
          <span class="logo" aria-hidden="true">
            H
          </span>
          Hatch
        </div>
        {children}
      </form>
    </main>
  );
}

/** "in 1 s" / "in 2 min": a Retry-After as a person reads it. */
function inSeconds(s: number | undefined): string {
  if (s === undefined) return 'in a moment';
  return s < 90 ? `in ${s} s` : `in ${Math.ceil(s / 60)} min`;
}

/**
 * The sentence for a failed sign-in or invite: `unauthorized` for a 401 (wrong password, link
 * used), the wait for a 429 or 503 from their Retry-After, the server's own words otherwise.
 */
export function signInError(err: unknown, unauthorized: string): string {
  if (!(err instanceof ApiError)) return (err as Error).message;
  if (err.status === 401) return unauthorized;
  if (err.status === 429) return `Too many failed sign-ins from this address: try again ${inSeconds(err.retryAfterS)}.`;
  if (err.status === 503) return `Hatch is busy right now: try again ${inSeconds(err.retryAfterS)}.`;
  return err.message;
}

/**
 * `initialError`: a failed one-click link; `notice`: why this window is here (signed out
 * elsewhere, a revoked session), shown until the first attempt.
 */
export function Login({ onLoggedIn, initialError, notice }: { onLoggedIn: () => void; initialError?: string; notice?: string }) {
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const [error, setError] = useState(initialError);
  const [info, setInfo] = useState(notice);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setInfo(undefined);
    if (mode === 'password' && (!email.trim() || !password)) {
      setError(email.trim() ? 'Enter your password' : 'Enter your email');
      return;
    }
    if (mode === 'token' && !token.trim()) {
      setError('Paste your API token');
      return;
    }
    setBusy(true);
    try {
      if (mode === 'password') await api.signIn(email.trim(), password);
      else await api.login(token.trim());
      onLoggedIn();
    } catch (err) {
      setError(signInError(err, mode === 'password' ? 'Wrong email or password' : 'That token is not valid'));
    } finally {
      setBusy(false);
    }
  }

  const described = error ? 'login-error' : undefined;
  return (
    <AuthCard testid="login" onSubmit={(e) => void submit(e)}>
      <h1>Sign in</h1>
      {mode === 'password' ? (
        <>
          <TextField
            id="email"
            label="Email"
            type="email"
            autoComplete="username"
            value={email}
            onValue={setEmail}
            describedBy={described}
            autoFocus
          />
          <TextField
            id="password"
            label="Password"
            type="password"
            autoComplete="current-password"
            value={password}
            onValue={setPassword}
            describedBy={described}
          />
        </>
      ) : (
        <TextField
          id="token"
          label="API token"
          type="password"
          autoComplete="current-password"
          value={token}
          onValue={setToken}
          describedBy={described}
          autoFocus
        >
          <p class="muted small">The API token from your setup (HATCH_API_TOKEN) signs in as “API”, an admin.</p>
        </TextField>
      )}
      {info && !error ? (
        <p class="notice" role="status" data-testid="login-notice">
          {info}
        </p>
      ) : null}
      {error ? (
        <p id="login-error" class="field-error" role="alert" data-testid="login-error">
          {error}
        </p>
      ) : null}
      <button type="submit" class="btn btn-primary btn-block" disabled={busy}>
        {busy ? 'Signing in…' : 'Sign in'}
      </button>
      <button
        type="button"
        class="btn btn-link login-switch"
        onClick={() => {
          setMode(mode === 'password' ? 'token' : 'password');
          setError(undefined);
        }}
        data-testid="login-mode"
      >
        {mode === 'password' ? 'Use an API token instead' : 'Use email and password'}
      </button>
    </AuthCard>
  );
}
