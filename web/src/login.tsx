import { useState } from 'preact/hooks';
import { api, ApiError } from './api.js';

export function Login({ onLoggedIn, initialError }: { onLoggedIn: () => void; initialError?: string }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(initialError);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    if (!token.trim()) {
      setError('Paste your API token');
      return;
    }
    setBusy(true);
    try {
      await api.login(token.trim());
      onLoggedIn();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'That token is not valid' : (err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="login">
      <form class="login-card" onSubmit={(e) => void submit(e)} noValidate data-testid="login">
        <div class="brand brand-lg">
          <span class="logo" aria-hidden="true">
            H
          </span>
          Hatch
        </div>
        <h1>Sign in</h1>
        <p class="muted">Use the API token from your setup (HATCH_API_TOKEN) or the sign-in link setup printed.</p>
        <div class="field">
          <label for="token">API token</label>
          <input
            id="token"
            name="token"
            type="password"
            autoComplete="current-password"
            value={token}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)}
            aria-invalid={error ? 'true' : undefined}
            aria-describedby={error ? 'token-error' : undefined}
            autoFocus
          />
          {error ? (
            <p id="token-error" class="field-error" role="alert" data-testid="login-error">
              {error}
            </p>
          ) : null}
        </div>
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
