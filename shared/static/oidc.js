// Login for the vroegsignaal web pages: an OIDC public client (authorization code flow
// with PKCE, RFC 7636) and bearer-token calls to the page's own API. The token lives in
// sessionStorage: gone when the tab closes. Shared by the inbox and the audit pages.

const store = window.sessionStorage;

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText() {
  return b64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function challengeOf(verifier) {
  return b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
}

export class Session {
  // configUrl answers {issuer, client_id, scope}; the page at redirectPath handles the answer.
  constructor({ configUrl, redirectPath, onLoggedOut }) {
    this.configUrl = configUrl;
    this.redirectUri = `${location.origin}${redirectPath}`;
    this.onLoggedOut = onLoggedOut;
  }

  // Loads the issuer's discovery document and finishes a login in progress; true when
  // there is a token to call the API with.
  async start() {
    this.config = await (await fetch(this.configUrl)).json();
    const discovery = `${this.config.issuer}/.well-known/openid-configuration`;
    this.discovery = await (await fetch(discovery)).json();
    const params = new URLSearchParams(location.search);
    if (params.has("code")) await this.finishLogin(params);
    return Boolean(this.token());
  }

  token() {
    return store.getItem("access_token");
  }

  async login() {
    const verifier = randomText();
    const state = randomText();
    store.setItem("pkce_verifier", verifier);
    store.setItem("oauth_state", state);
    const params = new URLSearchParams({
      response_type: "code",
      client_id: this.config.client_id,
      redirect_uri: this.redirectUri,
      // The issuer's scopes for this deployment (VS_OIDC_SCOPE: with Entra ID, the API's).
      scope: this.config.scope || "openid profile email",
      state,
      code_challenge: await challengeOf(verifier),
      code_challenge_method: "S256",
    });
    location.assign(`${this.discovery.authorization_endpoint}?${params}`);
  }

  async finishLogin(params) {
    const expected = store.getItem("oauth_state");
    const verifier = store.getItem("pkce_verifier");
    store.removeItem("oauth_state");
    store.removeItem("pkce_verifier");
    if (!expected || !verifier || params.get("state") !== expected) {
      history.replaceState(null, "", this.redirectUri);
      throw new Error("the login answer does not match a login from this page: log in again");
    }
    const response = await fetch(this.discovery.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: params.get("code"),
        redirect_uri: this.redirectUri,
        client_id: this.config.client_id,
        code_verifier: verifier,
      }),
    });
    const answer = await response.json();
    if (!response.ok) {
      throw new Error(`login refused: ${answer.error_description || answer.error}`);
    }
    store.setItem("access_token", answer.access_token);
    history.replaceState(null, "", this.redirectUri);
  }

  logout() {
    store.clear();
    this.onLoggedOut();
  }

  // A request with the bearer token; the raw response (a page, a file), or a logout
  // when the session has ended.
  async fetch(path, options = {}) {
    const response = await fetch(path, {
      ...options,
      headers: {
        ...(options.headers || {}),
        Authorization: `Bearer ${this.token()}`,
        ...(options.body ? { "Content-Type": "application/json" } : {}),
      },
    });
    if (response.status === 401) {
      store.removeItem("access_token");
      this.onLoggedOut();
      throw new Error("your session ended: log in again");
    }
    return response;
  }

  async api(path, options = {}) {
    const response = await this.fetch(path, options);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `request failed (${response.status})`);
    return data;
  }
}

export function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

export { when } from "./i18n.js";
