/** The account menu in the top bar: who is signed in (name, role), the account pages, sign out. */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Whoami } from '@hatch/contracts';
import { IconLogout } from './icons.js';
import { linkClick } from './router.js';

export function initials(name: string): string {
  const words = name
    .trim()
    .split(/[\s@._-]+/)
    .filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  return letters.map((w) => [...(w as string)][0]?.toUpperCase() ?? '').join('') || '?';
}

export function AccountMenu({ me, onSignOut }: { me: Whoami | undefined; onSignOut: () => void }) {
  const [open, setOpen] = useState(false);
  const root = useRef<HTMLDivElement>(null);

  // Closes on a click elsewhere and on Escape.
  useEffect(() => {
    if (!open) return;
    const click = (e: MouseEvent) => {
      if (!root.current?.contains(e.target as Node)) setOpen(false);
    };
    const key = (e: KeyboardEvent) => {
      if (e.key === 'Escape') setOpen(false);
    };
    document.addEventListener('click', click);
    document.addEventListener('keydown', key);
    return () => {
      document.removeEventListener('click', click);
      document.removeEventListener('keydown', key);
    };
  }, [open]);

  const name = me?.name ?? '…';
  const go = (e: MouseEvent, href: string) => {
    setOpen(false);
    linkClick(e, href);
  };
  const item = (href: string, label: string, testid: string) => (
    <a class="menu-item" role="menuitem" href={href} onClick={(e) => go(e, href)} data-testid={testid}>
      {label}
    </a>
  );

  return (
    <div class="account" ref={root}>
      <button
        type="button"
        class="account-btn"
        aria-haspopup="menu"
        aria-expanded={open}
        onClick={() => setOpen(!open)}
        data-testid="account-menu"
        title={me ? `${me.name} (${me.role})` : 'Account'}
      >
        <span class="avatar sm" aria-hidden="true">
          {initials(name)}
        </span>
        <span class="label account-name" data-testid="account-name">
          {name}
        </span>
      </button>
      {open ? (
        <div class="menu" role="menu" aria-label="Account">
          <div class="menu-who">
            <strong>{name}</strong>
            {me?.user ? <span class="muted small">{me.user.email}</span> : null}
            {me ? (
              <span class="badge role" data-testid="account-role">
                {me.role}
              </span>
            ) : null}
          </div>
          {item('/sessions', 'Sessions', 'menu-sessions')}
          {item('/tokens', 'API tokens', 'menu-tokens')}
          {me?.role === 'admin' ? item('/people', 'People', 'menu-people') : null}
          {me?.role === 'admin' ? item('/audit', 'Audit', 'menu-audit') : null}
          <button
            type="button"
            class="menu-item"
            role="menuitem"
            onClick={() => {
              setOpen(false);
              onSignOut();
            }}
            data-testid="logout"
          >
            <IconLogout />
            Sign out
          </button>
        </div>
      ) : null}
    </div>
  );
}
