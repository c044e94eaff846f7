// The webhook list: health, where each one sends, its last delivery (in the list's one answer),
// the owner and companies for operators, a page at a time.

import { api } from './api.js';
import { badge, h, navigation, show, when } from './dom.js';

const PAGE = 25;

export async function listView(after) {
  const ticket = navigation.ticket();
  const [page, me] = await Promise.all([
    api('GET', `/v1/webhooks?limit=${PAGE}${after ? `&cursor=${encodeURIComponent(after)}` : ''}`),
    api('GET', '/v1/me'),
  ]);
  if (navigation.stale(ticket)) return;
  const operator = me.scope === 'operator';
  const newButton = h('button', { type: 'button', class: 'primary', id: 'new-webhook',
    onclick: () => { location.hash = '#/webhooks/new'; } }, 'New webhook');
  const header = h('div', { class: 'row spread' }, h('h1', {}, 'Webhooks'), page.data.length || after ? newButton : null);
  if (!page.data.length && !after) {
    return show(header, emptyState());
  }
  const companies = (c) => (c === 'all' ? 'all companies' : (c?.only ?? []).join(', ') || 'no companies');
  const rows = page.data.map((webhook) => {
    const last = webhook.lastDelivery;
    return h('tr', {},
      h('td', {}, h('a', { href: `#/webhooks/${webhook.id}` }, webhook.name),
        h('div', { class: 'muted small url' }, webhook.url)),
      h('td', {}, badge(webhook.status)),
      h('td', { class: 'hide-narrow' }, webhook.connector.name),
      operator ? h('td', { class: 'hide-narrow' }, webhook.createdById, h('div', { class: 'muted small' }, companies(webhook.companies))) : null,
      h('td', {}, last
        ? [badge(last.status), ' ', h('span', { class: 'small' }, last.eventType || ''), h('div', { class: 'muted small' }, when(last.createdAt))]
        : h('span', { class: 'muted' }, 'none yet')));
  });
  const paging = h('div', { class: 'row spread paging' },
    after ? h('a', { class: 'button', href: '#/webhooks' }, '← First page') : h('span'),
    page.nextCursor ? h('a', { class: 'button', id: 'next-page', href: `#/webhooks?after=${encodeURIComponent(page.nextCursor)}` }, 'Next page →') : null);
  show(
    header,
    h('div', { class: 'table-wrap card flush' }, h('table', { id: 'webhooks' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Webhook'), h('th', {}, 'Health'), h('th', { class: 'hide-narrow' }, 'Connector'),
        operator ? h('th', { class: 'hide-narrow' }, 'Owner · companies') : null, h('th', {}, 'Last delivery'))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No more webhooks.'))))),
    paging,
  );
}

function emptyState() {
  return h('div', { class: 'card empty', id: 'empty' },
    h('h2', {}, 'No webhooks yet'),
    h('p', {}, 'A webhook sends the events you choose to a URL of yours — as plain JSON, or shaped for Slack, Zapier, Pabbly or a CRM by its connector — signed, and retried when your receiver fails.'),
    h('p', {}, h('button', { type: 'button', class: 'primary', id: 'new-webhook', onclick: () => { location.hash = '#/webhooks/new'; } }, 'Create your first webhook')),
    h('p', { class: 'muted small' }, 'Then use "Send test event" on its page to see a delivery arrive.'));
}
