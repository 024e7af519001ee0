/**
 * The shell: login gate (and the invite page), header (navigation, live indicator, account menu),
 * conversations list and the routed main pane. One EventSource per window (live.ts) fans events
 * out to the mounted views. A 401 from any call or from the event stream's reconnect (the session
 * was ended elsewhere: the server closes its stream) sends the window to the sign-in page.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { Conversation, Whoami } from '@hatch/contracts';
import { AccountMenu } from './account-menu.js';
import { AuditPage, PeoplePage, SessionsPage, TokensPage } from './account.js';
import { api, ApiError, onUnauthorized } from './api.js';
import { publish, subscribe } from './bus.js';
import { Composer } from './composer.js';
import { ConversationList } from './conversations.js';
import { EmailModal } from './email-modal.js';
import { EmailsView } from './emails.js';
import { IconBack, IconCompose, IconMail, IconPlus } from './icons.js';
import { Invite } from './invite.js';
import { startLive, type LiveState } from './live.js';
import { LoadState } from './load-state.js';
import { Login } from './login.js';
import { linkClick, navigate, useRoute } from './router.js';
import { Thread } from './thread.js';

const PAGE = 30;
type Auth = 'checking' | 'out' | 'in';

export function App() {
  const route = useRoute();
  const [auth, setAuth] = useState<Auth>('checking');
  const [loginError, setLoginError] = useState<string>();
  const [loginNotice, setLoginNotice] = useState<string>();
  const [convs, setConvs] = useState<Conversation[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loadingConvs, setLoadingConvs] = useState(false);
  const [convError, setConvError] = useState<string>();
  const [live, setLive] = useState<LiveState>('connecting');
  const [emailOpen, setEmailOpen] = useState(false);
  const [now, setNow] = useState(() => Date.now());
  const [me, setMe] = useState<Whoami>();
  const loadingMore = useRef(false);
  const authRef = useRef<Auth>('checking');
  authRef.current = auth;

  // Relative times stay current.
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 30_000);
    return () => clearInterval(t);
  }, []);

  /** First page, merged in front of what is already loaded: new conversations appear at the top. */
  const refreshHead = useCallback(async () => {
    const page = await api.conversations(PAGE);
    setConvs((old) => {
      const fresh = new Set(page.conversations.map((c) => c.conversation_id));
      const rest = old.filter((c) => !fresh.has(c.conversation_id));
      return [...page.conversations, ...rest].sort((a, b) => (a.updated_at < b.updated_at ? 1 : a.updated_at > b.updated_at ? -1 : 0));
    });
    setCursor((c) => (c === null && page.next_cursor ? page.next_cursor : c));
    setConvError(undefined);
    return page;
  }, []);

  // Start: a one-click link logs in and leaves the address bar clean; then probe the session.
  // setup.sh prints `/#token=…` (a fragment never reaches a server, a proxy or an access log);
  // `?token=` works too.
  useEffect(() => {
    void (async () => {
      const params = new URLSearchParams(location.search);
      const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
      const token = hash.get('token') ?? params.get('token');
      if (token) {
        params.delete('token');
        hash.delete('token');
        const qs = params.toString();
        const fragment = hash.toString();
        history.replaceState(null, '', location.pathname + (qs ? `?${qs}` : '') + (fragment ? `#${fragment}` : ''));
        try {
          await api.login(token);
        } catch (err) {
          setLoginError(
            err instanceof ApiError && err.status === 401
              ? 'The sign-in link is not valid (the token may have changed)'
              : (err as Error).message,
          );
          setAuth('out');
          return;
        }
      }
      setLoadingConvs(true);
      try {
        const page = await api.conversations(PAGE);
        setConvs(page.conversations);
        setCursor(page.next_cursor);
        setAuth('in');
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) setAuth('out');
        else {
          setConvError((err as Error).message);
          setAuth('in');
        }
      } finally {
        setLoadingConvs(false);
      }
    })();
    // Signed in until now: the session ended (signed out elsewhere, revoked, expired, disabled).
    return onUnauthorized(() => {
      if (authRef.current === 'in') setLoginNotice('You were signed out. Sign in again to continue.');
      setMe(undefined);
      setAuth('out');
    });
  }, []);

  // Who is signed in: the account menu's name and role, and which pages it offers.
  useEffect(() => {
    if (auth !== 'in') return;
    let live = true;
    api.whoami().then(
      (w) => live && setMe(w),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [auth]);

  // One EventSource per signed-in window.
  useEffect(() => {
    if (auth !== 'in') return;
    const l = startLive({
      state: setLive,
      message: (event) => publish({ kind: 'message', event }),
      email: (event) => publish({ kind: 'email', event }),
      refetch: () => publish({ kind: 'refetch' }),
      // EventSource hides the status; an API call tells a 401 (session over → sign-in) apart.
      refused: () => void api.whoami().catch(() => undefined),
    });
    return () => l.stop();
  }, [auth]);

  // The list follows every message change (coalesced: a burst is one request).
  useEffect(() => {
    if (auth !== 'in') return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const off = subscribe((e) => {
      if (e.kind === 'email') return;
      if (timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        refreshHead().catch((err: Error) => setConvError(err.message));
      }, 100);
    });
    return () => {
      off();
      if (timer) clearTimeout(timer);
    };
  }, [auth, refreshHead]);

  const loadMore = useCallback(async () => {
    if (!cursor || loadingMore.current) return;
    loadingMore.current = true;
    setLoadingConvs(true);
    try {
      const page = await api.conversations(PAGE, cursor);
      setConvs((old) => [...old, ...page.conversations.filter((c) => !old.some((o) => o.conversation_id === c.conversation_id))]);
      setCursor(page.next_cursor);
    } catch (err) {
      setConvError((err as Error).message);
    } finally {
      loadingMore.current = false;
      setLoadingConvs(false);
    }
  }, [cursor]);

  async function logout() {
    try {
      await api.logout();
    } catch {
      // signed out either way: the cookie is cleared or the session was already gone
    } finally {
      setConvs([]);
      setCursor(null);
      setMe(undefined);
      setLoginError(undefined);
      setLoginNotice(undefined);
      setAuth('out');
      navigate('/', true);
    }
  }

  const signedIn = () => {
    setLoginError(undefined);
    setLoginNotice(undefined);
    setAuth('checking');
    setLoadingConvs(true);
    refreshHead()
      .then(
        () => setAuth('in'),
        (err: Error) => {
          setConvError(err.message);
          setAuth('in');
        },
      )
      .finally(() => setLoadingConvs(false));
  };

  // The invite / reset link works signed in or out: accepting it signs this window in as that person.
  if (route.name === 'invite')
    return (
      <Invite
        onAccepted={() => {
          navigate('/', true);
          signedIn();
        }}
      />
    );
  if (auth === 'checking') return <div class="boot" aria-busy="true" />;
  if (auth === 'out')
    return <Login key={`${loginError ?? ''}|${loginNotice ?? ''}`} initialError={loginError} notice={loginNotice} onLoggedIn={signedIn} />;

  const activeId = route.name === 'thread' ? route.id : undefined;
  const detail = route.name !== 'home';
  return (
    <div class={`shell${detail ? ' show-detail' : ''}`}>
      <header class="topbar">
        <a class="brand" href="/" onClick={(e) => linkClick(e, '/')}>
          <span class="logo" aria-hidden="true">
            H
          </span>
          <span>Hatch</span>
        </a>
        <nav class="nav" aria-label="Main">
          <a
            href="/emails"
            class={`nav-link${route.name === 'emails' ? ' active' : ''}`}
            aria-current={route.name === 'emails' ? 'page' : undefined}
            onClick={(e) => linkClick(e, '/emails')}
          >
            <IconMail />
            <span class="label">Emails</span>
          </a>
        </nav>
        <span class={`live live-${live}`} role="status" aria-live="polite" data-testid="live" data-state={live}>
          <span class="live-dot" aria-hidden="true" />
          <span class="label">{live === 'live' ? 'Live' : live === 'connecting' ? 'Connecting…' : 'Reconnecting…'}</span>
        </span>
        <button type="button" class="btn btn-outline btn-sm" onClick={() => setEmailOpen(true)} data-testid="compose-email">
          <IconCompose />
          <span class="label">Compose email</span>
        </button>
        <AccountMenu me={me} onSignOut={() => void logout()} />
      </header>
      <aside class="sidebar" aria-label="Conversations">
        <div class="sidebar-head">
          <h1>Conversations</h1>
          <a class="btn btn-primary btn-sm" href="/new" onClick={(e) => linkClick(e, '/new')} data-testid="new-message">
            <IconPlus />
            <span>New</span>
          </a>
        </div>
        <ConversationList
          meId={me ? (me.user?.id ?? null) : undefined}
          conversations={convs}
          hasMore={cursor !== null}
          loading={loadingConvs}
          error={convError}
          activeId={activeId}
          now={now}
          onLoadMore={() => void loadMore()}
        />
      </aside>
      <main class="main">
        {route.name === 'thread' ? (
          <Thread
            key={route.id}
            conversationId={route.id}
            conversation={convs.find((c) => c.conversation_id === route.id)}
            now={now}
            onActivity={() => void refreshHead().catch(() => undefined)}
          />
        ) : route.name === 'new' ? (
          <section class="new-message" aria-labelledby="new-title">
            <header class="pane-head">
              <a class="icon-btn back" href="/" aria-label="Back to conversations" onClick={(e) => linkClick(e, '/')}>
                <IconBack />
              </a>
              <div class="pane-title">
                <h2 id="new-title">New message</h2>
                <span class="muted small">A phone number (+15551234567) sends an SMS; a name starts a chat.</span>
              </div>
            </header>
            <div class="grow" />
            <Composer
              autoFocus
              onSent={(res) => {
                void refreshHead().catch(() => undefined);
                navigate(`/c/${res.conversation_id}`);
              }}
            />
          </section>
        ) : route.name === 'emails' ? (
          <EmailsView now={now} onCompose={() => setEmailOpen(true)} />
        ) : route.name === 'sessions' ? (
          <SessionsPage now={now} onSignOut={() => void logout()} />
        ) : !me && (route.name === 'tokens' || route.name === 'people' || route.name === 'audit') ? (
          <LoadState loading error={undefined} />
        ) : me && route.name === 'tokens' ? (
          <TokensPage now={now} me={me} />
        ) : me && route.name === 'people' ? (
          <PeoplePage now={now} me={me} />
        ) : me && route.name === 'audit' ? (
          <AuditPage now={now} me={me} />
        ) : (
          <div class="empty main-empty">
            <p class="empty-title">Pick a conversation</p>
            <p class="muted">or start a new one.</p>
            <a class="btn btn-primary" href="/new" onClick={(e) => linkClick(e, '/new')}>
              New message
            </a>
          </div>
        )}
      </main>
      {emailOpen ? <EmailModal onClose={() => setEmailOpen(false)} onSent={() => undefined} /> : null}
    </div>
  );
}
