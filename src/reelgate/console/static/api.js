// The console's only way to the server: the public API, with the key from this tab's sessionStorage in the
// Authorization header (never in a URL, a cookie or localStorage), and nothing cached by the browser.

const STORE = "reelgate.console.session";

/** The path prefix the server is mounted under (a proxy's root path); the shell carries it. */
export const ROOT = document.body.dataset.root || "";

export const session = {
  get() {
    try {
      const value = JSON.parse(sessionStorage.getItem(STORE) || "null");
      return value && typeof value.token === "string" ? value : null;
    } catch {
      return null;
    }
  },
  set(value) {
    sessionStorage.setItem(STORE, JSON.stringify(value));
  },
  clear() {
    sessionStorage.removeItem(STORE);
  },
};

/** An answer of the API that is not a 2xx, read from the contract's envelope (or the files API's wrapper
 * around it): status, type, message, the field it names (param) and its suggestion. */
export class ApiError extends Error {
  constructor(status, type, message, { param = null, suggestion = null, retryAfter = null } = {}) {
    super(message);
    this.status = status;
    this.type = type;
    this.param = param;
    this.suggestion = suggestion;
    this.retryAfter = retryAfter;
  }

  /** What the console shows: "402 insufficient_quota_error: ... (ask the operator...)". */
  describe() {
    const head = this.status ? `${this.status} ${this.type}` : this.type;
    let text = `${head}: ${this.message}`;
    if (this.suggestion) text += ` (suggestion: ${this.suggestion})`;
    if (this.retryAfter) text += ` Retry after ${this.retryAfter} s.`;
    return text;
  }
}

export function authHeaders(token) {
  const given = token ?? session.get()?.token;
  return given ? { Authorization: `Bearer ${given}` } : {};
}

/** One call of the API. `body`: JSON; `form`: a FormData (multipart); `token`: other than the session's. */
export async function call(method, path, { body, form, headers = {}, token, signal } = {}) {
  const sent = { ...authHeaders(token), ...headers };
  let payload;
  if (form !== undefined) {
    payload = form;
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    sent["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(ROOT + path, {
      method,
      headers: sent,
      body: payload,
      cache: "no-store",
      credentials: "omit",
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network_error", "The server could not be reached");
  }
  return read(response);
}

export async function read(response) {
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw errorOf(response, data);
  return data;
}

export function errorOf(response, data) {
  const envelope = (data && data.error) || {};
  return new ApiError(
    response.status,
    envelope.type || "error",
    envelope.message || (data && data.msg) || `HTTP ${response.status}`,
    {
      param: envelope.param || null,
      suggestion: envelope.fallback_suggestion || null,
      retryAfter: response.headers.get("Retry-After"),
    },
  );
}
