// Webhooks: the list with health badges, the create/edit form, and one webhook's page (chart,
// actions, delivery log).

import { ApiError, api } from './api.js';
import { renderStats } from './chart.js';
import { badge, errorFor, h, setError, show, toast, when } from './dom.js';
import { configForm } from './schema-form.js';

export async function listView() {
  const page = await api('GET', '/v1/webhooks?limit=200');
  const rows = await Promise.all(page.data.map(async (webhook) => {
    const log = await api('GET', `/v1/webhooks/${webhook.id}/deliveries?limit=1`).catch(() => ({ data: [] }));
    const last = log.data[0];
    return h('tr', {},
      h('td', {}, h('a', { href: `#/webhooks/${webhook.id}` }, webhook.name)),
      h('td', {}, badge(webhook.status)),
      h('td', { class: 'url hide-narrow' }, webhook.url),
      h('td', { class: 'hide-narrow' }, webhook.connector.name),
      h('td', {}, last ? [badge(last.status), ' ', h('span', { class: 'muted' }, when(last.createdAt))] : h('span', { class: 'muted' }, 'none yet')));
  }));
  show(
    h('h1', {}, 'Webhooks', h('a', { class: 'button primary', href: '#/webhooks/new' }, 'New webhook')),
    rows.length
      ? h('div', { class: 'table-wrap' }, h('table', { id: 'webhooks' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Health'), h('th', { class: 'hide-narrow' }, 'URL'),
          h('th', { class: 'hide-narrow' }, 'Connector'), h('th', {}, 'Last delivery'))),
        h('tbody', {}, rows)))
      : h('p', { class: 'card' }, 'No webhooks yet. ', h('a', { href: '#/webhooks/new' }, 'Create the first one.')),
  );
}

/** Event families, in the order the form shows them; the most specific prefix first. */
const FAMILIES = [
  ['TODO_CHECKLIST_ITEM_', 'Checklist items'], ['TODO_CHECKLIST_', 'Checklists'], ['TODO_LIST_', 'Todo lists'],
  ['TODO_', 'Todos'], ['CUSTOM_FIELD_', 'Custom fields'], ['TAG_', 'Tags'], ['COMMENT_', 'Comments'],
];
const FAMILY_ORDER = ['Todos', 'Todo lists', 'Checklists', 'Checklist items', 'Custom fields', 'Tags', 'Comments', 'Other'];

/** TODO_CHECKLIST_ITEM_CREATED → "Checklist items". */
function family(name) {
  return FAMILIES.find(([prefix]) => name.startsWith(prefix))?.[1] ?? 'Other';
}

export async function formView(id) {
  const [webhook, connectors, eventTypes] = await Promise.all([
    id ? api('GET', `/v1/webhooks/${id}`) : null,
    api('GET', '/v1/connectors'),
    api('GET', '/v1/event-types'),
  ]);
  const editing = Boolean(webhook);
  const chosen = new Set(webhook?.metadata.events ?? []);
  const groups = new Map(FAMILY_ORDER.map((name) => [name, []]));
  for (const type of eventTypes.filter((t) => t.name !== 'WEBHOOK_HEALTH_CHECK')) {
    const name = family(type.name);
    groups.get(name).push(type);
  }
  const text = (fieldId, label, value, attributes = {}) => h('div', {},
    h('label', { for: fieldId }, label, attributes.hint ? h('span', { class: 'hint' }, ` — ${attributes.hint}`) : null),
    h('input', { type: attributes.type ?? 'text', id: fieldId, value: value ?? '', autocomplete: 'off', ...attributes.input }),
    errorFor(fieldId));

  const connectorSelect = h('select', { id: 'connector' },
    connectors.map((c) => h('option', { value: c.name, selected: c.name === (webhook?.connector.name ?? 'json') },
      `${c.name} ${c.version} — ${c.description}`)));
  const configSlot = h('div', {});
  let config;
  const renderConfig = () => {
    const connector = connectors.find((c) => c.name === connectorSelect.value);
    const sameConnector = webhook && webhook.connector.name === connectorSelect.value;
    config = configForm(connector?.configSchema, sameConnector ? webhook.connector.config : {}, { editing: sameConnector });
    configSlot.replaceChildren(config.element);
  };
  connectorSelect.addEventListener('change', renderConfig);
  renderConfig();

  const events = h('fieldset', { id: 'events' },
    h('legend', {}, 'Events ', h('span', { class: 'hint' }, '— none checked means every event')),
    [...groups].filter(([, types]) => types.length).map(([name, types]) => h('fieldset', {}, h('legend', {}, name),
      h('div', { class: 'checks' }, types.map((type) => h('label', { title: type.description },
        h('input', { type: 'checkbox', name: 'event', value: type.name, checked: chosen.has(type.name) }), type.name))))),
    errorFor('events'));

  const form = h('form', { class: 'card', novalidate: true },
    text('name', 'Name', webhook?.name, { input: { required: true } }),
    text('url', 'URL', webhook?.url, { type: 'url', hint: 'where deliveries are sent', input: { required: true, placeholder: 'https://' } }),
    editing ? null : text('secret', 'Secret', '', { hint: 'leave empty to generate one (whsec_…)' }),
    h('div', {}, h('label', { for: 'connector' }, 'Connector'), connectorSelect, errorFor('connector')),
    h('fieldset', {}, h('legend', {}, 'Connector settings'), configSlot),
    events,
    text('projectIds', 'Project IDs', (webhook?.metadata.projectIds ?? []).join(', '), { hint: 'comma-separated; empty means every project' }),
    h('div', {}, h('label', { for: 'filter' }, 'Payload filter ', h('span', { class: 'hint' }, '— JSON, optional, e.g. {"path": "currentValue.done", "op": "eq", "value": true}')),
      h('textarea', { id: 'filter', spellcheck: 'false' }, webhook?.filter ? JSON.stringify(webhook.filter, null, 2) : ''), errorFor('filter')),
    text('rateLimit', 'Rate limit', webhook?.rateLimit ?? '', { type: 'number', hint: 'messages per second; empty for none', input: { min: 1 } }),
    h('label', { class: 'inline' }, h('input', { type: 'checkbox', id: 'ordered', checked: webhook?.ordered }), 'Deliver in order, one at a time'),
    h('label', { class: 'inline' }, h('input', { type: 'checkbox', id: 'enabled', checked: webhook?.enabled ?? true }), 'Enabled'),
    h('div', { class: 'error', id: 'form-error', role: 'alert' }),
    h('div', { class: 'row' },
      h('button', { type: 'submit', class: 'primary' }, editing ? 'Save' : 'Create webhook'),
      h('a', { class: 'button', href: editing ? `#/webhooks/${id}` : '#/webhooks' }, 'Cancel')));

  const fields = ['name', 'url', 'secret', 'connector', 'events', 'projectIds', 'filter', 'rateLimit'];
  const apiField = { 'metadata.events': 'events', 'metadata.projectIds': 'projectIds', 'connector.name': 'connector' };
  form.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    fields.forEach((f) => setError(f, null));
    config.clearErrors();
    document.getElementById('form-error').textContent = '';
    let body;
    try {
      const filterText = document.getElementById('filter').value.trim();
      let filter = null;
      if (filterText) {
        try {
          filter = JSON.parse(filterText);
        } catch (error) {
          throw Object.assign(new Error(`not valid JSON (${error.message})`), { field: 'filter' });
        }
      }
      const rate = document.getElementById('rateLimit').value;
      body = {
        name: document.getElementById('name').value,
        url: document.getElementById('url').value,
        enabled: document.getElementById('enabled').checked,
        metadata: {
          events: [...form.querySelectorAll('input[name=event]:checked')].map((box) => box.value),
          projectIds: document.getElementById('projectIds').value.split(',').map((p) => p.trim()).filter(Boolean),
        },
        filter,
        connector: { name: connectorSelect.value, config: config.read() },
        rateLimit: rate ? Number(rate) : null,
        ordered: document.getElementById('ordered').checked,
      };
      const secret = document.getElementById('secret')?.value;
      if (secret) body.secret = secret;
      if (!editing) {
        if (body.filter === null) delete body.filter;
        if (body.rateLimit === null) delete body.rateLimit;
      }
    } catch (error) {
      if (!(error.field && (setError(error.field, error.message) || config.showError(error.message, error.message)))) {
        document.getElementById('form-error').textContent = error.message;
      }
      return;
    }
    try {
      if (editing) {
        await api('PATCH', `/v1/webhooks/${id}`, body);
        toast('Saved');
        location.hash = `#/webhooks/${id}`;
      } else {
        const created = await api('POST', '/v1/webhooks', body);
        createdView(created);
      }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const field = error.field ?? '';
      const target = apiField[field] ?? fields.find((f) => field === f || field.startsWith(`${f}.`) || field.startsWith(`${f}[`));
      const shown = field.startsWith('connector.config') ? config.showError(field, error.message) : target && setError(target, error.message);
      if (!shown) document.getElementById('form-error').textContent = error.message;
      document.querySelector('[aria-invalid=true]')?.focus();
    }
  });

  show(h('h1', {}, editing ? `Edit ${webhook.name}` : 'New webhook'), form);
  document.getElementById('name').focus();
}

/** Right after creation: the secret, this once. */
function createdView(created) {
  const copy = h('button', { type: 'button', id: 'copy-secret', onclick: async () => {
    await navigator.clipboard.writeText(created.secret).then(() => toast('Secret copied'), () => toast('Select the secret and copy it'));
  } }, 'Copy');
  show(
    h('h1', {}, `Created ${created.name}`),
    h('div', { class: 'card' },
      h('p', {}, 'This is the signing secret. It is shown only now: store it where your receiver can verify signatures with it.'),
      h('div', { class: 'secret' }, h('code', { id: 'secret-value' }, created.secret), copy),
      h('p', {}, h('a', { class: 'button primary', href: `#/webhooks/${created.id}` }, 'Go to the webhook'))),
  );
}

export async function detailView(id, { keepFocus = false } = {}) {
  const [webhook, log, stats] = await Promise.all([
    api('GET', `/v1/webhooks/${id}`),
    api('GET', `/v1/webhooks/${id}/deliveries?limit=50`),
    api('GET', `/v1/webhooks/${id}/stats`),
  ]);
  const act = (label, run, attributes = {}) => h('button', { type: 'button', ...attributes, onclick: async (click) => {
    click.currentTarget.disabled = true;
    try {
      await run();
      await detailView(id, { keepFocus: true });
    } catch (error) {
      // Also when the page changed meanwhile (signed out, navigated): say it, never throw.
      toast(error.message);
    }
  } }, label);
  const since = new Date(Date.now() - 7 * 24 * 3600 * 1000).toISOString();
  const actions = h('div', { class: 'row' },
    webhook.enabled
      ? act('Disable', () => api('PATCH', `/v1/webhooks/${id}`, { enabled: false }), { id: 'disable' })
      : act('Re-enable', () => api('PATCH', `/v1/webhooks/${id}`, { enabled: true }).then(() => toast('Enabled: a health check goes first')), { id: 'enable', class: 'primary' }),
    act('Send test event', () => api('POST', `/v1/webhooks/${id}/test`).then(() => toast('Test event queued')), { id: 'send-test' }),
    act('Recover failed and paused', () => api('POST', `/v1/webhooks/${id}/recover`, { since }).then((r) => toast(`${r.requeued} re-queued`)), { id: 'recover' }),
    h('a', { class: 'button', href: `#/webhooks/${id}/edit` }, 'Edit'),
    act('Delete', async () => {
      if (!confirm(`Delete ${webhook.name}? Its delivery log goes with it.`)) return;
      await api('DELETE', `/v1/webhooks/${id}`);
      location.hash = '#/webhooks';
    }, { class: 'danger' }));
  const chart = h('div', { class: 'chart', id: 'chart' });
  const deliveries = log.data.map((delivery) => h('details', { class: 'delivery' },
    h('summary', {}, badge(delivery.status), ' ', when(delivery.createdAt), ' ', h('code', {}, delivery.eventId),
      delivery.error ? h('span', { class: 'error' }, ` ${delivery.error}`) : null),
    delivery.attempts.length
      ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Attempt at'), h('th', {}, 'Status'), h('th', {}, 'Latency'), h('th', {}, 'Response / error'))),
        h('tbody', {}, delivery.attempts.map((a) => h('tr', {},
          h('td', {}, when(a.at)), h('td', {}, a.statusCode ?? '—'), h('td', {}, `${a.latencyMs} ms`),
          h('td', {}, a.error ? h('span', { class: 'error' }, a.error) : h('code', {}, a.response ?? '')))))))
      : h('p', { class: 'muted' }, 'No attempts.'),
    delivery.messages.map((m) => h('pre', {}, `${m.request.method} ${m.request.url ?? webhook.url}\n\n${m.request.body}`)),
    delivery.pluginLog?.length ? h('pre', {}, delivery.pluginLog.map((l) => `${l.level}: ${l.message}`).join('\n')) : null));
  const view = [
    h('h1', {}, webhook.name, h('span', { id: 'health' }, badge(webhook.status))),
    h('div', { class: 'card' },
      h('p', {}, h('code', {}, webhook.url)),
      h('p', { class: 'muted' }, `Connector ${webhook.connector.name} · events: ${webhook.metadata.events.join(', ') || 'all'} · projects: ${webhook.metadata.projectIds.join(', ') || 'all'}`),
      actions),
    h('h2', {}, 'Last 24 hours'), h('div', { class: 'card' }, chart),
    h('h2', {}, 'Deliveries ', h('button', { type: 'button', class: 'link', onclick: () => detailView(id, { keepFocus: true }) }, '↻ refresh')),
    h('div', { class: 'card', id: 'deliveries' }, deliveries.length ? deliveries : h('p', { class: 'muted' }, 'No deliveries yet.')),
  ];
  if (keepFocus && location.hash === `#/webhooks/${id}`) {
    // A refresh: keep what the user opened and where the keyboard was.
    const open = new Set([...document.querySelectorAll('details.delivery[open] code')].map((c) => c.textContent));
    const focused = document.activeElement?.id;
    show(...view);
    document.querySelectorAll('details.delivery').forEach((d) => { if (open.has(d.querySelector('code').textContent)) d.open = true; });
    if (focused) document.getElementById(focused)?.focus();
  } else {
    show(...view);
  }
  renderStats(chart, stats);
}
