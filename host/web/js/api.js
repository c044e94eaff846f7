// The REST API, as the web app uses it: the signed-in token and one fetch wrapper that turns
// wasmhook's {"error": {"code", "message", "fields"}} answers into ApiError.

const KEY = 'wasmhook-token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  signIn: (token) => sessionStorage.setItem(KEY, token),
  signOut: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message, fields = []) {
    super(message);
    this.status = status;
    this.code = code;
    /** Every field at fault, as the API names them: [{field: "url", message: "…"}]. */
    this.fields = fields;
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
    const error = data?.error ?? {};
    throw new ApiError(response.status, error.code ?? 'error', error.message ?? `HTTP ${response.status}`, error.fields ?? []);
  }
  return data;
}
