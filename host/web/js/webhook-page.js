// One webhook's page: a header card with its health, what it sends where and its last 24
// hours at a glance; a banner when it needs the user (disabled, failing, re-checking); the
// hourly chart; and the delivery log with each delivery's attempts as a timeline. It refreshes
// itself while open without rebuilding what did not change.

import { api } from './api.js';
import { renderStats } from './chart.js';
import { actionButton, badge, h, navigation, show, toast, when } from './dom.js';

/** What a delivery's status means, for the rows that would otherwise puzzle. */
const EXPLAINED = {
  paused: 'Paused: the webhook was disabled when this was due. It is kept; once the webhook is re-enabled, Recover sends it.',
  filtered: 'Filtered: the connector chose to send nothing for this event.',
  plugin_error: 'The connector failed on this event; nothing was sent. The connector log below says why.',
  pending: 'Waiting for its next attempt.',
};

/** The newest failure in the log: its reason, and when. */
function lastFailure(deliveries) {
  for (const delivery of deliveries) {
    const failed = [...delivery.attempts].reverse().find((a) => a.error || (a.statusCode && a.statusCode >= 300));
    if (failed) return { reason: failed.error ?? `the receiver answered ${failed.statusCode}`, at: failed.at };
    if (delivery.status === 'failed' && delivery.error) return { reason: delivery.error, at: delivery.createdAt };
  }
  return null;
}

function banner(webhook, failure) {
  const why = failure ? [' The last error, ', when(failure.at), ': ', h('strong', { class: 'last-error' }, failure.reason), '.'] : '';
  if (!webhook.enabled) {
    return h('div', { class: 'banner bad', id: 'banner', role: 'status' },
      h('strong', {}, 'This webhook is disabled.'), ' Nothing is sent; new deliveries are kept as paused.', why,
      h('p', {}, 'To resume: fix the receiver (or ', h('a', { href: `#/webhooks/${webhook.id}/edit` }, 'edit the URL'),
        '), then ', h('strong', {}, 'Re-enable'), ' — a health check goes first — and ', h('strong', {}, 'Recover'),
        ' to send what was paused or failed.'));
  }
  if (webhook.status === 'UNHEALTHY') {
    return h('div', { class: 'banner warn', id: 'banner', role: 'status' },
      h('strong', {}, 'Recent attempts failed.'), ' Deliveries are retried on the schedule; if every attempt of a delivery fails, the webhook is disabled.', why);
  }
  if (webhook.status === 'PENDING') {
    return h('div', { class: 'banner info', id: 'banner', role: 'status' },
      h('strong', {}, 'Checking.'), ' A health check was sent on re-enabling; the status shows its outcome once the receiver answers.');
  }
  return null;
}

/** An attempt as one step of the timeline. */
function attemptStep(attempt, index) {
  const ok = attempt.statusCode && attempt.statusCode < 300 && !attempt.error;
  return h('li', { class: ok ? 'ok' : 'bad' },
    h('span', { class: 'when' }, `#${index + 1} · ${when(attempt.at)}`),
    h('span', {}, attempt.statusCode ? `HTTP ${attempt.statusCode}` : 'no answer', ` · ${attempt.latencyMs} ms`,
      attempt.remoteId ? ` · remote id ${attempt.remoteId}` : ''),
    attempt.error ? h('div', { class: 'error' }, attempt.error) : attempt.response ? h('code', { class: 'response' }, attempt.response) : null);
}

function deliveryRow(delivery, webhook) {
  return h('details', { class: 'delivery', 'data-id': delivery.id },
    h('summary', {},
      badge(delivery.status), ' ', h('span', { class: 'event-type' }, delivery.eventType || 'event'), ' ',
      h('span', { class: 'muted' }, when(delivery.createdAt)), ' ',
      h('code', { class: 'hide-narrow' }, delivery.eventId),
      delivery.error ? h('div', { class: 'error' }, delivery.error) : null),
    EXPLAINED[delivery.status] ? h('p', { class: 'muted explain' }, EXPLAINED[delivery.status]) : null,
    delivery.attempts.length
      ? h('ol', { class: 'timeline' }, delivery.attempts.map(attemptStep))
      : h('p', { class: 'muted' }, 'No attempts yet.'),
    delivery.messages.map((m) => h('pre', {}, `${m.request.method} ${m.request.url ?? webhook.url}\n\n${m.request.body}`)),
    delivery.pluginLog?.length ? h('pre', { class: 'plugin-log' }, delivery.pluginLog.map((l) => `${l.level}: ${l.message}`).join('\n')) : null);
}

/** Totals of the last 24 hours by outcome. */
function totals(stats) {
  const sum = {};
  for (const hour of stats.hours) for (const [outcome, n] of Object.entries(hour.outcomes)) sum[outcome] = (sum[outcome] ?? 0) + n;
  return sum;
}

function glance(stats) {
  const sum = totals(stats);
  const cell = (label, n, tone) => h('div', { class: `count ${tone}` }, h('strong', {}, String(n ?? 0)), h('span', {}, label));
  return h('div', { class: 'counts', id: 'counts' },
    cell('delivered', sum.succeeded, 'ok'), cell('failed', sum.failed, 'bad'), cell('plugin errors', sum.plugin_error, 'bad'),
    cell('filtered', sum.filtered, ''), cell('waiting', (sum.pending ?? 0) + (sum.paused ?? 0), 'warn'));
}

export async function detailView(id, { refresh = false } = {}) {
  const ticket = navigation.ticket();
  const [webhook, log, stats] = await Promise.all([
    api('GET', `/v1/webhooks/${id}`),
    api('GET', `/v1/webhooks/${id}/deliveries?limit=50`),
    api('GET', `/v1/webhooks/${id}/stats`),
  ]);
  // Painted only if the user is still here (and, for a refresh, still on this page).
  const page = document.querySelector(`[data-webhook="${id}"]`);
  if (navigation.stale(ticket) || (refresh && !page)) return;

  const reload = () => detailView(id, { refresh: true });
  const since = new Date(Date.now() - 7 * 24 * 3600 * 1000).toISOString();
  const actions = h('div', { class: 'row' },
    webhook.enabled
      ? actionButton('Disable', () => api('PATCH', `/v1/webhooks/${id}`, { enabled: false }).then(reload), { id: 'disable' })
      : actionButton('Re-enable', () => api('PATCH', `/v1/webhooks/${id}`, { enabled: true }).then(() => toast('Enabled: a health check goes first')).then(reload), { id: 'enable', class: 'primary' }),
    actionButton('Send test event', () => api('POST', `/v1/webhooks/${id}/test`).then(() => toast('Test event queued')).then(reload), { id: 'send-test' }),
    actionButton('Recover failed and paused', () => api('POST', `/v1/webhooks/${id}/recover`, { since }).then((r) => toast(`${r.requeued} re-queued`)).then(reload),
      { id: 'recover', disabled: !webhook.enabled, title: webhook.enabled ? 'Send the last 7 days\' failed and paused deliveries again' : 'Re-enable the webhook first' }),
    h('a', { class: 'button', href: `#/webhooks/${id}/edit` }, 'Edit'),
    actionButton('Delete', async () => {
      if (!confirm(`Delete ${webhook.name}? Its delivery log goes with it.`)) return;
      await api('DELETE', `/v1/webhooks/${id}`);
      location.hash = '#/webhooks';
    }, { class: 'danger' }));

  // The chart survives refreshes: its plots are updated in place.
  const chart = page?.querySelector('#chart') ?? h('div', { class: 'chart', id: 'chart' });
  const rows = log.data.map((delivery) => deliveryRow(delivery, webhook));
  const view = h('div', { 'data-webhook': id },
    h('h1', {}, webhook.name, h('span', { id: 'health' }, badge(webhook.status))),
    banner(webhook, lastFailure(log.data)),
    h('div', { class: 'card header-card' },
      h('p', {}, h('code', {}, webhook.url)),
      h('p', { class: 'muted' }, `Connector ${webhook.connector.name} · events: ${webhook.metadata.events.join(', ') || 'all'} · projects: ${webhook.metadata.projectIds.join(', ') || 'all'}`),
      glance(stats),
      actions),
    h('h2', {}, 'Last 24 hours'), h('div', { class: 'card' }, chart),
    h('h2', {}, 'Deliveries ', h('button', { type: 'button', class: 'link', onclick: reload }, '↻ refresh')),
    h('div', { class: 'card', id: 'deliveries' }, rows.length ? rows : h('p', { class: 'muted' }, 'No deliveries yet. "Send test event" sends one.')));

  if (page) {
    // A refresh: keep what the user opened and where the keyboard was.
    const open = new Set([...page.querySelectorAll('details.delivery[open]')].map((d) => d.dataset.id));
    const focused = document.activeElement?.id;
    page.replaceWith(view);
    view.querySelectorAll('details.delivery').forEach((d) => { if (open.has(d.dataset.id)) d.open = true; });
    if (focused) document.getElementById(focused)?.focus();
  } else {
    show(view);
  }
  renderStats(chart, stats);
}
