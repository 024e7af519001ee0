/** A five-route history router: the gateway serves index.html for every non-API path. */
import { useEffect, useState } from 'preact/hooks';

export type Route = { name: 'home' } | { name: 'new' } | { name: 'thread'; id: string } | { name: 'emails' };

export function parseRoute(pathname: string): Route {
  const m = /^\/c\/([0-9a-fA-F-]{36})\/?$/.exec(pathname);
  if (m) return { name: 'thread', id: (m[1] as string).toLowerCase() };
  if (pathname === '/new') return { name: 'new' };
  if (pathname === '/emails') return { name: 'emails' };
  return { name: 'home' };
}

export function hrefOf(r: Route): string {
  switch (r.name) {
    case 'thread':
      return `/c/${r.id}`;
    case 'new':
      return '/new';
    case 'emails':
      return '/emails';
    default:
      return '/';
  }
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
