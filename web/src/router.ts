/** A small history router: the gateway serves index.html for every non-API path. */
import { useEffect, useState } from 'preact/hooks';

/** Pages that are one path each (the account pages and the invite). */
const PAGES = ['new', 'emails', 'sessions', 'tokens', 'people', 'audit', 'invite'] as const;
type PageName = (typeof PAGES)[number];

export type Route = { name: 'home' } | { name: PageName } | { name: 'thread'; id: string };

export function parseRoute(pathname: string): Route {
  const m = /^\/c\/([0-9a-fA-F-]{36})\/?$/.exec(pathname);
  if (m) return { name: 'thread', id: (m[1] as string).toLowerCase() };
  const page = PAGES.find((p) => pathname === `/${p}` || pathname === `/${p}/`);
  return page ? { name: page } : { name: 'home' };
}

export function hrefOf(r: Route): string {
  if (r.name === 'thread') return `/c/${r.id}`;
  return r.name === 'home' ? '/' : `/${r.name}`;
}

export function navigate(r: Route | string, replace = false): void {
  const href = typeof r === 'string' ? r : hrefOf(r);
  if (href === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  dispatchEvent(new PopStateEvent('popstate'));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.pathname));
    addEventListener('popstate', on);
    return () => removeEventListener('popstate', on);
  }, []);
  return route;
}

/** A plain link that routes in-page on an unmodified left click. */
export function linkClick(e: MouseEvent, href: string): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(href);
}
