import { createHash, timingSafeEqual } from 'node:crypto';
import { NumgradError } from '../core/errors.js';
import type { DashboardCredentials } from '../io/config.js';

/** Paths that answer without credentials: a container's health check has none. */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/healthz']);

/** The cookie set after a good `?token=`, so bull-board's own requests (which carry no token) pass. */
export const TOKEN_COOKIE = 'numgrad_dashboard';

export type AuthVerdict = { ok: true; setCookie?: string } | { ok: false; challenge?: string };

/** Whether `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Constant-time string equality (hashing first makes the lengths equal). */
function same(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * The dashboard's access rule. Bound to loopback without credentials it is open and read-only (only
 * this machine reaches it; the Host check of host-check.ts keeps rebinding pages out); bound anywhere
 * else, or with bull-board's actions on, it needs a token or a user and password, and refuses to start
 * without them. Configured credentials are always enforced. Credentials are compared in constant
 * time and never appear in a message.
 */
export class DashboardAuth {
  private readonly token?: string;
  private readonly user?: string;
  private readonly password?: string;
  /** What the cookie holds: a hash of the token, so the token itself never sits in a cookie jar. */
  private readonly cookieValue?: string;

  constructor(host: string, creds: DashboardCredentials = {}, allowActions = false) {
    this.token = creds.token || undefined;
    this.user = creds.user || undefined;
    this.password = creds.password || undefined;
    if ((this.user === undefined) !== (this.password === undefined)) {
      throw new NumgradError('numgrad dashboard: DASHBOARD_USER and DASHBOARD_PASSWORD go together (one is set, the other is not)');
    }
    if (!this.enabled && !isLoopback(host)) {
      throw new NumgradError(`refusing to listen on ${host} without DASHBOARD_TOKEN or DASHBOARD_USER/DASHBOARD_PASSWORD`);
    }
    // Actions (clean, remove, retry jobs) are what a hostile page would want: never without credentials, wherever bound.
    if (allowActions && !this.enabled) {
      throw new NumgradError('numgrad dashboard: --allow-actions needs DASHBOARD_TOKEN or DASHBOARD_USER/DASHBOARD_PASSWORD, on loopback too (any web page the user opens can send requests to it)');
    }
    if (this.token !== undefined) this.cookieValue = digest(`numgrad-dashboard:${this.token}`).toString('hex');
  }

  get enabled(): boolean {
    return this.token !== undefined || this.user !== undefined;
  }

  /** Which schemes are on, for the start-up line (never the values). */
  describe(): string {
    if (!this.enabled) return 'no authentication (loopback only)';
    return [this.token !== undefined ? 'bearer token' : '', this.user !== undefined ? 'basic auth' : ''].filter(Boolean).join(' or ');
  }

  check(path: string, headers: { authorization?: string; cookie?: string }, queryToken: string | undefined): AuthVerdict {
    if (!this.enabled || PUBLIC_PATHS.has(path)) return { ok: true };
    const auth = headers.authorization ?? '';
    if (this.token !== undefined) {
      const bearer = /^Bearer\s+(.+)$/i.exec(auth)?.[1];
      if (bearer !== undefined && same(bearer.trim(), this.token)) return { ok: true };
      if (queryToken !== undefined && same(queryToken, this.token)) {
        return { ok: true, setCookie: `${TOKEN_COOKIE}=${this.cookieValue}; Path=/; HttpOnly; SameSite=Strict` };
      }
      const cookie = readCookie(headers.cookie, TOKEN_COOKIE);
      if (cookie !== undefined && same(cookie, this.cookieValue as string)) return { ok: true };
    }
    if (this.user !== undefined) {
      const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(auth)?.[1];
      if (basic !== undefined) {
        const decoded = Buffer.from(basic, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon >= 0 && same(decoded.slice(0, colon), this.user) && same(decoded.slice(colon + 1), this.password as string)) return { ok: true };
      }
      // Lets a browser ask for the user and password.
      return { ok: false, challenge: 'Basic realm="numgrad dashboard", charset="UTF-8"' };
    }
    return { ok: false, challenge: 'Bearer realm="numgrad dashboard"' };
  }
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** A URL with any `token` query parameter replaced, for logs. */
export function redactQueryToken(url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, '$1***');
}
