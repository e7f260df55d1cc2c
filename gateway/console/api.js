// The console's only door to the API: every call goes through this module.
//
// - Base path /v1 (our shapes, strict parameters), same origin only: the
//   page's Content-Security-Policy (connect-src 'self') forbids any other.
// - The bearer token: kept in sessionStorage, with the signed-in user, so a
//   reload of the tab keeps the session; it is gone when the tab closes, is
//   never sent by the browser on its own (no cookie, so no CSRF), and no other
//   tab or site can read it. A refresh token, when the login returns one, is
//   kept in memory only: the longer-lived secret never touches storage.
// - Errors: every failure is an ApiError built from the JSON error body
//   {"error", "code", "violations"?}; describe() renders it for people.
// - What the API offers: the served OpenAPI document, read once, says which
//   routes exist, so pages can hide or disable an action the API lacks.

const BASE = "/v1";
const STORAGE_KEY = "cqrs-console.session";

/** HTTP statuses meaning "this API does not offer that route". */
const NOT_OFFERED = new Set([404, 405, 501]);

export class ApiError extends Error {
  constructor(status, code, message, violations = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.violations = violations;
  }

  /** True when the route itself is missing (not when a user is missing). */
  get notOffered() {
    if (this.status === 404) return this.message.startsWith("no route for");
    return NOT_OFFERED.has(this.status);
  }

  /** "400 INVALID_ARGUMENT: new_password: too short (email: taken)" */
  describe() {
    const head = this.status ? `${this.status} ${this.code}` : this.code;
    const details = this.violations.map(describeViolation).filter(Boolean);
    return `${head}: ${this.message}${details.length ? ` (${details.join("; ")})` : ""}`;
  }
}

function describeViolation(violation) {
  if (typeof violation === "string") return violation;
  if (!violation || typeof violation !== "object") return "";
  const field = violation.field ?? violation.path ?? "";
  const text = violation.description ?? violation.message ?? violation.error ?? "";
  return field ? `${field}: ${text}` : String(text);
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: described by its status alone
  }
  const message = body && typeof body.error === "string" ? body.error : response.statusText;
  const code = body && typeof body.code === "string" ? body.code : `HTTP_${response.status}`;
  const violations = body && Array.isArray(body.violations) ? body.violations : [];
  return new ApiError(response.status, code, message || "request failed", violations);
}

// ------------------------------------------------------------- session ---

let session = readStoredSession();
let refreshToken = "";
const sessionListeners = new Set();

function readStoredSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
    return stored && typeof stored.token === "string" && stored.user ? stored : null;
  } catch {
    return null;
  }
}

function setSession(next) {
  session = next;
  if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(STORAGE_KEY);
  for (const listener of sessionListeners) listener(session);
}

/** {token, user: {id, email, role, ...}} or null. */
export function currentSession() {
  return session;
}

export function isAdmin() {
  return session?.user?.role === "admin";
}

export function onSessionChange(listener) {
  sessionListeners.add(listener);
  return () => sessionListeners.delete(listener);
}

// ------------------------------------------------------------ requests ---

function urlOf(path, query) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

async function send(method, path, { query, body, signal, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && session?.token) headers.Authorization = `Bearer ${session.token}`;
  try {
    return await fetch(urlOf(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "UNAVAILABLE", "the gateway cannot be reached");
  }
}

/** A response, refreshing the access token once on a 401 when a refresh token exists. */
async function call(method, path, options = {}) {
  const sentWith = session?.token;
  let response = await send(method, path, options);
  if (response.status === 401 && options.auth !== false && (await renewedSince(sentWith))) {
    response = await send(method, path, options);
  }
  if (response.status === 401 && options.auth !== false && session) {
    const error = await errorOf(response);
    setSession(null); // the token expired or was revoked: sign in again
    throw error;
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function json(method, path, options) {
  const response = await call(method, path, options);
  if (response.status === 204) return {};
  return response.json();
}

const get = (path, query, options = {}) => json("GET", BASE + path, { ...options, query });
const post = (path, body = {}) => json("POST", BASE + path, { body });
const put = (path, body = {}) => json("PUT", BASE + path, { body });
const del = (path) => json("DELETE", BASE + path);

const seg = encodeURIComponent;

// ------------------------------------------------------ what is offered ---

let offered = null;

/**
 * Resolves to a Map from "VERB /v1/template" to the Set of its query
 * parameter names, for every route the API serves, read once from
 * /openapi.json (public); an empty Map if it cannot be read, in which case
 * every action is tried and a refusal explains itself.
 */
export function offeredRoutes() {
  offered ??= (async () => {
    const routes = new Map();
    try {
      const response = await send("GET", "/openapi.json", { auth: false });
      if (!response.ok) return routes;
      const document = await response.json();
      for (const [path, item] of Object.entries(document.paths ?? {})) {
        for (const [verb, operation] of Object.entries(item ?? {})) {
          const names = (operation?.parameters ?? [])
            .filter((parameter) => parameter?.in === "query")
            .map((parameter) => parameter.name);
          routes.set(`${verb.toUpperCase()} ${path}`, new Set(names));
        }
      }
    } catch {
      routes.clear();
    }
    return routes;
  })();
  return offered;
}

/** Whether the API serves verb + /v1 + template (e.g. "POST", "/users/{id}/activate"). */
export async function offers(verb, template) {
  const routes = await offeredRoutes();
  return routes.size === 0 || routes.has(`${verb} ${BASE}${template}`);
}

/** Whether that route takes a query parameter of this name. */
export async function acceptsParameter(verb, template, name) {
  const routes = await offeredRoutes();
  return routes.get(`${verb} ${BASE}${template}`)?.has(name) ?? false;
}

// ------------------------------------------------------------ sign in ---

export async function login(email, password) {
  const reply = await json("POST", `${BASE}/login`, { body: { email, password }, auth: false });
  refreshToken = reply.refresh_token ?? "";
  setSession({ token: reply.token, user: reply.user, expiresIn: reply.expires_in });
  return reply;
}

let refreshing = null;

/**
 * Whether a token newer than ``sentWith`` is in hand, refreshing if not.
 * One refresh at a time: a refresh token is single-use (a second use of it
 * ends the session as a stolen token would), so requests refused together
 * share one refresh, and a request refused after another one refreshed just
 * retries with the new token.
 */
async function renewedSince(sentWith) {
  if (session && session.token !== sentWith) return true;
  refreshing ??= refreshSession().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function refreshSession() {
  if (!refreshToken || !session || !(await offers("POST", "/token/refresh"))) return false;
  const response = await send("POST", `${BASE}/token/refresh`, {
    body: { refresh_token: refreshToken },
    auth: false,
  });
  if (!response.ok) {
    refreshToken = "";
    return false;
  }
  const reply = await response.json();
  refreshToken = reply.refresh_token ?? "";
  setSession({ ...session, token: reply.token, expiresIn: reply.expires_in });
  return true;
}

/** Ends the session at the API when it has a logout route, and here in any case. */
export async function logout() {
  try {
    if (session && (await offers("POST", "/logout"))) await post("/logout", {});
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // Signed out locally anyway; the token expires on its own.
  } finally {
    refreshToken = "";
    setSession(null);
  }
}

// -------------------------------------------------------------- users ---

export const listUsers = ({ status, pageSize, pageToken, email } = {}) =>
  get("/users", { status, page_size: pageSize, page_token: pageToken, email });
export const getUser = (id, minPosition, signal) =>
  get(`/users/${seg(id)}`, { min_position: minPosition }, { signal });

// -------------------------------------------------------- time travel ---

export const history = (id) => get(`/replay/user/${seg(id)}/history`);
export const stateAtVersion = (id, version) =>
  get(`/replay/user/${seg(id)}/state-at`, { version });
export const stateAtTime = (id, timestamp) =>
  get(`/replay/user/${seg(id)}/state-at`, { timestamp });
export const compare = (id, time1, time2) =>
  get(`/replay/user/${seg(id)}/compare`, { time1, time2 });
export const readStream = (id, fromVersion) =>
  get(`/streams/${seg(id)}`, { from_version: fromVersion });
export const countEvents = () => get("/events/count");

// ---------------------------------------------------------- snapshots ---

export const getSnapshot = (id) => get(`/snapshots/${seg(id)}`);
export const createSnapshot = (id) => post(`/snapshots/${seg(id)}`);
export const stateFromSnapshot = (id) => get(`/snapshots/${seg(id)}/state`);

// ------------------------------------------------------ admin actions ---

export const deactivate = (id, reason) => post(`/users/${seg(id)}/deactivate`, { reason });
export const activate = (id) => post(`/users/${seg(id)}/activate`, {});
export const resetPassword = (id, newPassword) =>
  put(`/users/${seg(id)}/password`, { new_password: newPassword });
export const erase = (id) => del(`/users/${seg(id)}`);

// ------------------------------------------------------------- health ---

/** /health/ready when the gateway has it, else null (the route is not under /v1). */
export async function readiness(signal) {
  const response = await send("GET", "/health/ready", { auth: false, signal });
  if (NOT_OFFERED.has(response.status)) return null;
  return response.json(); // 503 still carries the report
}

// -------------------------------------------------------------- live ---

/**
 * Reads the NDJSON subscription (admin) and calls onMessage(object) per
 * line until signal aborts or the stream ends. Rejects with ApiError when
 * refused; an error line ({"error", "code"}) ends it with that ApiError.
 */
export async function subscribe({ fromPosition, heartbeatSeconds = 1, signal, onMessage }) {
  const response = await call("GET", `${BASE}/events/subscribe`, {
    query: { from_position: fromPosition, heartbeat_seconds: heartbeatSeconds },
    signal,
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += value;
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) {
          const message = JSON.parse(line);
          if (typeof message.error === "string") {
            throw new ApiError(0, message.code ?? "UNKNOWN", message.error);
          }
          onMessage(message);
        }
        newline = buffered.indexOf("\n");
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
