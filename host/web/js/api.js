// The REST API, as the web app uses it: the signed-in token and one fetch wrapper that turns
// wasmhook's {"error": {"code", "message"}} answers into ApiError.

const KEY = 'wasmhook-token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  signIn: (token) => sessionStorage.setItem(KEY, token),
  signOut: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** The field a 400 names ("connector.config.apiKey: …" → "connector.config.apiKey"). */
  get field() {
    const match = /^([A-Za-z][\w.[\]]*): /.exec(this.message);
    return match ? match[1] : null;
  }
}

/** Calls the API; `body` is sent as JSON, or as-is when it is a Blob (a component upload). */
export async function api(method, path, body) {
  const headers = { authorization: `Bearer ${session.token()}` };
  let payload;
  if (body instanceof Blob) {
    payload = body;
    headers['content-type'] = 'application/wasm';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const response = await fetch(path, { method, headers, body: payload });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, data?.error?.code ?? 'error', data?.error?.message ?? `HTTP ${response.status}`);
  }
  return data;
}
