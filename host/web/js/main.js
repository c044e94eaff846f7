// The web app: sign in with a token, then hash routes over the REST API. No build step: plain
// ES modules served from the binary.

import { ApiError, api, session } from './api.js';
import { connectorsView } from './connectors.js';
import { h, navigation, show } from './dom.js';
import { formView } from './webhook-form.js';
import { detailView } from './webhook-page.js';
import { listView } from './webhooks.js';

const routes = [
  [/^#\/webhooks\/new$/, () => formView(null)],
  [/^#\/webhooks\/([\w-]+)\/edit$/, (id) => formView(id)],
  [/^#\/webhooks\/([\w-]+)$/, (id) => detailView(id)],
  [/^#\/connectors$/, () => connectorsView()],
  [/^#\/webhooks(?:\?after=([\w-]+))?$/, (after) => listView(after)],
];

function signInView(message) {
  const form = h('form', { class: 'card', id: 'sign-in' },
    h('h1', {}, 'Sign in'),
    h('label', { for: 'token' }, 'API token ', h('span', { class: 'hint' }, '— from your operator (wasmhook token create)')),
    h('input', { type: 'password', id: 'token', autocomplete: 'current-password', required: true }),
    h('div', { class: 'error', id: 'token-error', role: 'alert' }, message ?? ''),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  form.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    session.signIn(document.getElementById('token').value.trim());
    try {
      const me = await api('GET', '/v1/me');
      if (me.scope === 'ingest') throw new Error('this token can only send events; sign in with a user or operator token');
    } catch (error) {
      session.signOut();
      document.getElementById('token-error').textContent = error.message;
      return;
    }
    location.hash = '#/webhooks';
    await route();
  });
  document.getElementById('nav').hidden = true;
  show(form);
  document.getElementById('token').focus();
}

async function route() {
  const ticket = navigation.begin();
  if (!session.token()) return signInView();
  document.getElementById('nav').hidden = false;
  // Operators see the connectors page.
  api('GET', '/v1/me').then((me) => { document.getElementById('nav-connectors').hidden = me.scope !== 'operator'; }, () => {});
  const hash = location.hash || '#/webhooks';
  for (const [pattern, view] of routes) {
    const match = pattern.exec(hash);
    if (!match) continue;
    try {
      await view(...match.slice(1));
    } catch (error) {
      if (navigation.stale(ticket)) return; // the user has moved on
      if (error instanceof ApiError && error.status === 401) {
        session.signOut();
        return signInView('Your token was refused; sign in again.');
      }
      show(h('h1', {}, 'Something went wrong'), h('p', { class: 'card error', role: 'alert' }, error.message),
        h('a', { class: 'button', href: '#/webhooks' }, 'Back to webhooks'));
    }
    return;
  }
  location.hash = '#/webhooks';
}

// A webhook's page refreshes itself while it is open, so health changes show up.
setInterval(() => {
  const match = /^#\/webhooks\/([\w-]+)$/.exec(location.hash);
  if (match && match[1] !== 'new' && !document.hidden && session.token()) {
    detailView(match[1], { refresh: true }).catch(() => {});
  }
}, 2000);

document.getElementById('sign-out').addEventListener('click', () => {
  session.signOut();
  location.hash = '';
  signInView();
});
window.addEventListener('hashchange', route);
route();
