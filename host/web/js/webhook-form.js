// Creating and editing a webhook: where it sends, which events, its connector and that
// connector's settings (a form from the connector's schema), filter, rate and order. Every
// field the API refuses shows its reason under it, all at once.

import { ApiError, api } from './api.js';
import { errorFor, h, navigation, setError, show, toast } from './dom.js';
import { configForm } from './schema-form.js';

/** Event families, in the order the form shows them; the most specific prefix first. */
const FAMILIES = [
  ['TODO_CHECKLIST_ITEM_', 'Checklist items'], ['TODO_CHECKLIST_', 'Checklists'], ['TODO_LIST_', 'Todo lists'],
  ['TODO_', 'Todos'], ['CUSTOM_FIELD_', 'Custom fields'], ['TAG_', 'Tags'], ['COMMENT_', 'Comments'],
];
const FAMILY_ORDER = ['Todos', 'Todo lists', 'Checklists', 'Checklist items', 'Custom fields', 'Tags', 'Comments', 'Other', 'wasmhook itself'];

/** TODO_CHECKLIST_ITEM_CREATED → "Checklist items". */
function family(name) {
  return FAMILIES.find(([prefix]) => name.startsWith(prefix))?.[1] ?? 'Other';
}

/** Each scheme's transport. */
const TRANSPORTS = { http: 'http', https: 'http', amqp: 'amqp', amqps: 'amqp', nats: 'nats', redis: 'redis', rediss: 'redis', mqtt: 'mqtt', mqtts: 'mqtt' };

/** What each transport's URL takes. */
const DESTINATIONS = {
  http: 'HTTP: a POST to your receiver, signed (webhook-signature, X-Wasmhook-Signature). 410 Gone disables the webhook; 429 and 503 with Retry-After are waited out.',
  amqp: 'RabbitMQ: amqp(s)://user:password@host[:port]/vhost?exchange=X&routingKey=K. Persistent messages, each confirmed by the broker; without an exchange the default exchange routes to the queue named by routingKey. A message no queue takes fails the attempt.',
  nats: 'NATS JetStream: nats://[user:password@ or token@]host[:port]/subject. A stream must capture the subject; each message waits for the stream\'s acknowledgement, and Nats-Msg-Id (the message id) lets JetStream drop a retried duplicate.',
  redis: 'Redis Streams: redis(s)://[:password@]host[:port][/db]?stream=S[&maxlen=N]. Each message is one XADD entry: a field per header, then a body field; maxlen trims the stream to about that many entries.',
  mqtt: 'MQTT: mqtt(s)://[user:password@]host[:port]/topic[?qos=0|1|2][&version=5|3.1.1]. QoS 1 by default, acknowledged by the broker; headers go as MQTT 5 user properties, and MQTT 3.1.1 gets the envelope {"headers": {…}, "body": "…"}.',
};

/** The help for the URL typed so far: its transport and what it takes. */
function destinationHelp(url) {
  const transport = TRANSPORTS[/^([a-z]+):/i.exec(url.trim())?.[1]?.toLowerCase()];
  if (!transport) return 'Where deliveries go: an https:// receiver, or a broker — amqp(s)://, nats://, redis(s)://, mqtt(s)://.';
  const help = DESTINATIONS[transport];
  return transport === 'http' ? help : `${help} The login is stored sealed and shown back as ***; leave *** as it is to keep it.`;
}

/** The API's field paths → this form's fields. */
const API_FIELDS = { 'metadata.events': 'events', 'metadata.projectIds': 'projectIds', 'connector.name': 'connector' };
const FIELDS = ['name', 'url', 'secret', 'connector', 'events', 'projectIds', 'filter', 'rateLimit'];

function eventsFieldset(eventTypes, chosen) {
  const groups = new Map(FAMILY_ORDER.map((name) => [name, []]));
  // The host's own reports (listed to operators only) are a family of their own.
  for (const type of eventTypes.filter((t) => t.name !== 'WEBHOOK_HEALTH_CHECK')) groups.get(type.operatorOnly ? 'wasmhook itself' : family(type.name)).push(type);
  return h('fieldset', { id: 'events' },
    h('legend', {}, 'Events ', h('span', { class: 'hint' }, '— none checked means every event')),
    [...groups].filter(([, types]) => types.length).map(([name, types]) => {
      const boxes = types.map((type) => h('input', { type: 'checkbox', name: 'event', value: type.name, checked: chosen.has(type.name) }));
      const all = h('input', { type: 'checkbox', class: 'select-all', 'aria-label': `Every ${name.toLowerCase()} event` });
      const sync = () => {
        const checked = boxes.filter((b) => b.checked).length;
        all.checked = checked === boxes.length;
        all.indeterminate = checked > 0 && checked < boxes.length;
      };
      all.addEventListener('change', () => { boxes.forEach((b) => { b.checked = all.checked; }); });
      boxes.forEach((b) => b.addEventListener('change', sync));
      sync();
      return h('fieldset', { class: 'family' },
        h('legend', {}, h('label', { class: 'inline' }, all, name)),
        h('div', { class: 'checks' }, types.map((type, i) => h('label', {}, boxes[i],
          h('span', {}, h('code', {}, type.name), type.description ? h('span', { class: 'hint block' }, type.description) : null)))));
    }),
    errorFor('events'));
}

export async function formView(id) {
  const ticket = navigation.ticket();
  const [webhook, connectors, eventTypes] = await Promise.all([
    id ? api('GET', `/v1/webhooks/${id}`) : null,
    api('GET', '/v1/connectors'),
    api('GET', '/v1/event-types'),
  ]);
  if (navigation.stale(ticket)) return;
  const editing = Boolean(webhook);
  const text = (fieldId, label, value, attributes = {}) => h('div', {},
    h('label', { for: fieldId }, label, attributes.hint ? h('span', { class: 'hint' }, ` — ${attributes.hint}`) : null),
    h('input', { type: attributes.type ?? 'text', id: fieldId, value: value ?? '', autocomplete: 'off', ...attributes.input }),
    errorFor(fieldId));

  const connectorSelect = h('select', { id: 'connector' },
    connectors.map((c) => h('option', { value: c.name, selected: c.name === (webhook?.connector.name ?? 'json') },
      `${c.name} — ${c.description}`)));
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

  const urlHelp = h('p', { class: 'hint block', id: 'url-help' }, destinationHelp(webhook?.url ?? ''));
  const submitButton = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save' : 'Create webhook');
  const form = h('form', { class: 'card', novalidate: true },
    text('name', 'Name', webhook?.name, { input: { required: true } }),
    text('url', 'Destination URL', webhook?.url, { type: 'url', hint: 'your receiver, or a message broker', input: { required: true, placeholder: 'https://', 'aria-describedby': 'url-help' } }),
    urlHelp,
    editing ? null : text('secret', 'Signing secret', '', { hint: 'leave empty to generate one (whsec_…)' }),
    h('div', {}, h('label', { for: 'connector' }, 'Connector ', h('span', { class: 'hint' }, '— shapes each delivery for its target')), connectorSelect, errorFor('connector')),
    h('fieldset', {}, h('legend', {}, 'Connector settings'), configSlot),
    eventsFieldset(eventTypes, new Set(webhook?.metadata.events ?? [])),
    text('projectIds', 'Project IDs', (webhook?.metadata.projectIds ?? []).join(', '), { hint: 'comma-separated; empty means every project' }),
    h('div', {}, h('label', { for: 'filter' }, 'Payload filter ', h('span', { class: 'hint' }, '— JSON, optional, e.g. {"path": "currentValue.done", "op": "eq", "value": true}')),
      h('textarea', { id: 'filter', spellcheck: 'false' }, webhook?.filter ? JSON.stringify(webhook.filter, null, 2) : ''), errorFor('filter')),
    text('rateLimit', 'Rate limit', webhook?.rateLimit ?? '', { type: 'number', hint: 'messages per second; empty for none', input: { min: 1 } }),
    h('label', { class: 'inline' }, h('input', { type: 'checkbox', id: 'ordered', checked: webhook?.ordered }), 'Deliver in order, one at a time'),
    h('label', { class: 'inline' }, h('input', { type: 'checkbox', id: 'enabled', checked: webhook?.enabled ?? true }), 'Enabled'),
    h('div', { class: 'error', id: 'form-error', role: 'alert' }),
    h('div', { class: 'row' }, submitButton,
      h('a', { class: 'button', href: editing ? `#/webhooks/${id}` : '#/webhooks' }, 'Cancel')));

  /** Puts each problem under its field; what fits no field goes above the buttons. */
  const showProblems = (problems) => {
    const unplaced = [];
    for (const { field, message } of problems) {
      const target = API_FIELDS[field] ?? FIELDS.find((f) => field === f || field.startsWith(`${f}.`) || field.startsWith(`${f}[`));
      const shown = field.startsWith('connector.config') ? config.showError(field, message) : target && setError(target, message);
      if (!shown) unplaced.push(`${field}: ${message}`);
    }
    document.getElementById('form-error').textContent = unplaced.join('\n');
    document.querySelector('[aria-invalid=true]')?.focus();
  };

  form.addEventListener('input', (typed) => {
    if (typed.target.id === 'url') urlHelp.textContent = destinationHelp(typed.target.value);
  });

  form.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    FIELDS.forEach((f) => setError(f, null));
    config.clearErrors();
    document.getElementById('form-error').textContent = '';
    const problems = [];
    const filterText = document.getElementById('filter').value.trim();
    let filter = null;
    if (filterText) {
      try {
        filter = JSON.parse(filterText);
      } catch (error) {
        problems.push({ field: 'filter', message: `not valid JSON (${error.message})` });
      }
    }
    const settings = config.read();
    problems.push(...settings.problems);
    if (problems.length) return showProblems(problems);
    const rate = document.getElementById('rateLimit').value;
    const body = {
      name: document.getElementById('name').value,
      url: document.getElementById('url').value,
      enabled: document.getElementById('enabled').checked,
      metadata: {
        events: [...form.querySelectorAll('input[name=event]:checked')].map((box) => box.value),
        projectIds: document.getElementById('projectIds').value.split(',').map((p) => p.trim()).filter(Boolean),
      },
      filter,
      connector: { name: connectorSelect.value, config: settings.value },
      rateLimit: rate ? Number(rate) : null,
      ordered: document.getElementById('ordered').checked,
    };
    const secret = document.getElementById('secret')?.value;
    if (secret) body.secret = secret;
    if (!editing) {
      if (body.filter === null) delete body.filter;
      if (body.rateLimit === null) delete body.rateLimit;
    }
    submitButton.disabled = true;
    try {
      if (editing) {
        await api('PATCH', `/v1/webhooks/${id}`, body);
        toast('Saved');
        location.hash = `#/webhooks/${id}`;
      } else {
        createdView(await api('POST', '/v1/webhooks', body));
      }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showProblems(error.fields.length ? error.fields : [{ field: '', message: error.message }]);
    } finally {
      submitButton.disabled = false;
    }
  });

  show(h('h1', {}, editing ? `Edit ${webhook.name}` : 'New webhook'), form);
  document.getElementById('name').focus();
}

/** Right after creation: the secret, this once; the address is already the webhook's. */
function createdView(created) {
  // No hashchange: this page stays, and a reload or a shared link opens the webhook itself.
  history.replaceState(null, '', `#/webhooks/${created.id}`);
  navigation.begin();
  const copy = h('button', { type: 'button', id: 'copy-secret', onclick: async () => {
    await navigator.clipboard.writeText(created.secret).then(() => toast('Secret copied'), () => toast('Select the secret and copy it'));
  } }, 'Copy');
  show(
    h('h1', {}, `Created ${created.name}`),
    h('div', { class: 'card' },
      h('p', {}, 'This is the signing secret. It is shown only now: store it where your receiver can verify signatures with it.'),
      h('div', { class: 'secret' }, h('code', { id: 'secret-value' }, created.secret), copy),
      h('p', {}, h('a', { class: 'button primary', href: `#/webhooks/${created.id}`, id: 'go-to-webhook',
        onclick: (click) => { click.preventDefault(); window.dispatchEvent(new HashChangeEvent('hashchange')); } }, 'Go to the webhook'))),
  );
}
