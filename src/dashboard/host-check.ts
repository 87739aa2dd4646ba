import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ValidationError } from '../core/errors.js';
import { isLoopback } from './auth.js';

/** Paths any Host may ask for: a container's health check names the container, not the dashboard. */
export const ANY_HOST_PATHS: ReadonlySet<string> = new Set(['/healthz']);

/** The host name of a Host header or URL authority: no port, no brackets, no trailing dot, lower case. */
export function hostName(authority: string): string {
  const a = authority.trim().toLowerCase();
  const name = a.startsWith('[') ? a.slice(1, a.indexOf(']') > 0 ? a.indexOf(']') : undefined) : a.replace(/:\d*$/, '');
  return name.replace(/\.$/, '');
}

const WILDCARD = new Set(['0.0.0.0', '::', '']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The DNS-rebinding defence: a web page on `evil.example` whose name an attacker re-points at
 * 127.0.0.1 reaches a loopback dashboard from the user's own browser, with `Host: evil.example`.
 * So the dashboard answers only the names it is served under — the loopback names, the address it
 * is bound to (any IP address when bound to 0.0.0.0 or ::) and the host of each `--public-url` —
 * and 421 (Misdirected Request) to any other. A state-changing request whose
 * `Origin` is not one of those names is refused too (a cross-site form post to bull-board's API).
 */
export class HostCheck {
  private readonly names = new Set<string>(['localhost']);
  /** Bound to every interface: reached through port publishing or NAT under addresses not its own. */
  private readonly wildcard: boolean;

  constructor(bindHost: string, publicUrls: readonly string[] = []) {
    const bind = hostName(bindHost.includes(':') && !bindHost.startsWith('[') ? `[${bindHost}]` : bindHost);
    this.wildcard = WILDCARD.has(bind);
    if (this.wildcard) {
      for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) this.names.add(i.address.toLowerCase());
    } else {
      this.names.add(bind);
    }
    for (const u of publicUrls) {
      let url: URL;
      try {
        url = new URL(u);
      } catch {
        throw new ValidationError('numgrad dashboard', '--public-url', 'an absolute URL such as https://dashboard.example.com', u);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ValidationError('numgrad dashboard', '--public-url', 'an http: or https: URL', u);
      this.names.add(hostName(url.host));
    }
  }

  /** Whether a request with this Host header is for this dashboard. */
  allows(host: string | undefined): boolean {
    if (host === undefined || host === '') return false;
    const name = hostName(host);
    // Rebinding needs a DNS name the attacker controls; an address in Host is only ever the one the
    // browser connected to. A wildcard-bound dashboard (a container's published port) answers them.
    return isLoopback(name) || this.names.has(name) || (this.wildcard && isIP(name) !== 0);
  }

  /** Whether a request's Origin (absent on same-origin GETs and non-browser clients) is one of ours. */
  originAllowed(origin: string | undefined): boolean {
    if (origin === undefined) return true;
    try {
      return this.allows(new URL(origin).host);
    } catch {
      return false;
    }
  }

  /**
   * Why a request is refused, if it is: 421 for a Host that is not ours (except ANY_HOST_PATHS), 403
   * for a state-changing request from another Origin.
   */
  refusal(path: string, method: string, host: string | undefined, origin: string | undefined): { status: number; error: string } | undefined {
    if (!ANY_HOST_PATHS.has(path) && !this.allows(host)) return { status: 421, error: `misdirected request: this dashboard answers ${this.describe()} (add a name with --public-url)` };
    if (!SAFE_METHODS.has(method) && !this.originAllowed(origin)) return { status: 403, error: 'cross-origin request refused: Origin is not this dashboard' };
    return undefined;
  }

  /** The names it answers to, for the start-up line. */
  describe(): string {
    return ['loopback', ...[...this.names].filter((n) => !isLoopback(n))].join(', ');
  }
}
