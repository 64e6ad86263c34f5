// The session: the access token lives only in memory; the refresh token in
// localStorage, so a reload (or another tab) carries on without a login. The API sends
// tokens in Authorization, never in cookies, so the refresh token has to live where
// script can read it: a strict CSP (scripts from this origin only) and a client that
// never inserts received text as HTML are what keep it there. Tabs share one store and
// refresh one at a time (Web Locks), as the README asks of a browser client.

export const STORE = "xfchat.session";
const LOCK = "xfchat.refresh";

export class ApiError extends Error {
  constructor(status, body, retryAfter = null) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "HTTP_" + status;
    this.body = body || {};
    this.retryAfter = retryAfter; // seconds, from a 429's or 503's Retry-After
  }
}

// Worth trying again: a network error (no answer), a 5xx or a 429. Any other answer
// from the refresh (401, but also 400, 403, 422: a token the server will never take)
// ends the session, which is forgotten here.
export const retryable = (err) => !(err instanceof ApiError) || err.status >= 500 || err.status === 429;
export const sessionGone = (err) => !retryable(err);

// How long to wait before trying a failed call again (the `attempt`th failure in a row):
// a back-off from 2 s to a minute, never less than Retry-After asks, with jitter (the
// server sends Retry-After: 1 on every 503: taken alone, every tab would come back each
// second, all in step).
export function retryDelay(err, attempt) {
  const asked = err instanceof ApiError && err.retryAfter !== null ? err.retryAfter * 1000 : 0;
  const backoff = Math.min(60000, 1000 * 2 ** Math.min(Math.max(attempt, 1), 6));
  return Math.max(asked, Math.max(asked, backoff) * (0.75 + Math.random() / 2));
}

export class Session {
  constructor() {
    this.access = null;
    this.user = null;
    this.sessionId = null;
    this.timer = null;
    this.onEnd = () => {};
    this.refreshing = null;
    this.refreshFailures = 0;
    // The stored session became another account's (a login in another tab, which the
    // tabs share): this tab's account is not the one its tokens would now be.
    this.onSwitch = () => {};
  }

  // The stored session is another account's than the one this tab shows.
  get switched() {
    const held = this.stored;
    return Boolean(this.user && held && held.user_id !== this.user.id);
  }

  get stored() {
    try {
      return JSON.parse(localStorage.getItem(STORE) || "null");
    } catch {
      return null;
    }
  }

  adopt(tokens) {
    this.access = tokens.access_token;
    this.accessUntil = Date.now() + tokens.expires_in * 1000;
    this.user = tokens.user;
    this.sessionId = tokens.session_id;
    localStorage.setItem(
      STORE,
      JSON.stringify({ refresh_token: tokens.refresh_token, user_id: tokens.user.id }),
    );
    this.refreshFailures = 0;
    this.arm(Math.max(10, tokens.expires_in - 60) * 1000);
  }

  // The next scheduled refresh. One that fails for want of the server (not a 401) arms
  // the next itself (see refresh); a 401 ends the session.
  arm(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.refresh().catch((err) => {
        if (sessionGone(err)) this.onEnd("expired");
      });
    }, ms);
  }

  // The password step: null when logged in, or the two-factor ticket to go on with.
  async login(login, password) {
    const out = await request("POST", "/api/auth/login", null, { login, password });
    if (out.two_factor_required) return { ticket: out.ticket, expiresIn: out.expires_in };
    this.adopt(out);
    return null;
  }

  // The second step: the ticket and a code of the authenticator (or a recovery code).
  async loginTwoFactor(ticket, code) {
    this.adopt(await request("POST", "/api/auth/login/two-factor", null, { ticket, code }));
  }

  async register(fields) {
    this.adopt(await request("POST", "/api/auth/register", null, fields));
  }

  // Resume a stored session (after a reload). False if there is none or it ended.
  async restore() {
    if (!this.stored) return false;
    try {
      await this.refresh();
      return true;
    } catch (err) {
      if (sessionGone(err)) return false; // (forgotten by refresh)
      throw err;
    }
  }

  // One refresh at a time, across tabs: whoever holds the lock uses the newest stored
  // refresh token, so no token is ever presented twice.
  refresh() {
    if (!this.refreshing) {
      const run = async () => {
        const held = this.stored;
        if (!held) throw new ApiError(401, { code: "SESSION_REVOKED", message: "logged out" });
        if (this.switched) {
          // Never the other account's tokens under this one's name: the tab starts over.
          this.onSwitch();
          throw new ApiError(401, { code: "SESSION_SWITCHED", message: "another account logged in" });
        }
        try {
          this.adopt(await request("POST", "/api/auth/refresh", null, { refresh_token: held.refresh_token }));
        } catch (err) {
          if (sessionGone(err)) this.forget();
          else if (this.user) {
            // Kept: tried again later, however this refresh was asked for.
            this.refreshFailures += 1;
            this.arm(retryDelay(err, this.refreshFailures));
          }
          throw err;
        }
      };
      const locked = navigator.locks ? navigator.locks.request(LOCK, run) : run();
      this.refreshing = locked.finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  // The access token is past (or within half a minute of) its expiry.
  get accessStale() {
    return !this.access || !this.accessUntil || Date.now() > this.accessUntil - 30000;
  }

  forget() {
    clearTimeout(this.timer);
    if (!this.switched) localStorage.removeItem(STORE); // (never the other account's)
    this.access = null;
    this.user = null;
  }

  // Ends the session on the server, not only here: an expired access token (a laptop
  // woken from sleep, a throttled background tab) is refreshed and the logout sent
  // again. A 401 from the refresh means the server has already ended it. When the
  // server cannot be reached, nothing is dropped and the error is thrown: the person is
  // told and still logged in, rather than believing a stolen refresh token is dead
  // (so too when the refresh is answered 503 or 429).
  async logout() {
    const end = () => request("POST", "/api/auth/logout", this.access);
    try {
      await end().catch(async (err) => {
        if (!(err instanceof ApiError) || err.status !== 401) throw err;
        await this.refresh();
        await end();
      });
    } catch (err) {
      // Not reached, or busy (a 5xx or 429, from the logout or from the refresh it
      // needed): the session may well be alive there, so it is kept here too.
      if (retryable(err)) throw err;
      // Any other answer: the server heard it and the session is over (or never was).
    }
    this.forget();
    this.onEnd("logout");
  }

  // An API call with the access token; an expired token is refreshed once and the call
  // repeated. `body` is JSON, FormData for uploads, or a File sent as it is (an avatar).
  async call(method, path, body, extra = {}) {
    try {
      return await request(method, path, this.access, body, extra);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      try {
        await this.refresh();
      } catch (refreshErr) {
        // (not reached, or busy: the session stays, and the caller is told this call failed)
        if (sessionGone(refreshErr)) this.onEnd("expired");
        throw refreshErr;
      }
      return request(method, path, this.access, body, extra);
    }
  }

  // A file behind the token (attachments), as a blob.
  async blob(path) {
    const run = () => fetch(path, { headers: { Authorization: `Bearer ${this.access}` } });
    let res = await run();
    if (res.status === 401) {
      await this.refresh();
      res = await run();
    }
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    return res.blob();
  }
}

async function request(method, path, token, body, { raw = false, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body instanceof FormData) init.body = body;
  else if (body instanceof Blob) {
    init.body = body;
    init.headers["Content-Type"] = body.type || "application/octet-stream";
  } else if (body !== undefined && body !== null) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data, retryAfterOf(res));
  return raw ? { data, headers: res.headers } : data;
}

function retryAfterOf(res) {
  const value = res.headers.get("Retry-After");
  if (value === null) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, (at - Date.now()) / 1000);
}
