// Operators' connectors page: what is installed, upload, replace or remove one, and a preview
// box (an event in, the requests the connector would send out).

import { api } from './api.js';
import { actionButton, errorFor, h, navigation, setError, show, toast } from './dom.js';

const SAMPLE = {
  id: 'evt_preview', event: 'TODO_CREATED', companyId: 'company_acme', projectId: 'project_launch', userId: 'user_ada',
  currentValue: { id: 'todo_42', title: 'Draft the launch announcement', done: false, todoList: { id: 'list_7', title: 'Marketing' } },
};

export async function connectorsView() {
  const ticket = navigation.ticket();
  const connectors = await api('GET', '/v1/connectors');
  if (navigation.stale(ticket)) return;
  const upload = h('form', { class: 'card', id: 'upload', novalidate: true },
    h('h2', {}, 'Upload or replace a connector'),
    h('label', { for: 'upload-name' }, 'Name'), h('input', { type: 'text', id: 'upload-name', required: true, placeholder: 'my-connector' }), errorFor('upload-name'),
    h('label', { for: 'upload-file' }, 'Component (.wasm)'), h('input', { type: 'file', id: 'upload-file', accept: '.wasm,application/wasm', required: true }), errorFor('upload-file'),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Upload')));
  upload.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    setError('upload-name', null);
    setError('upload-file', null);
    const name = document.getElementById('upload-name').value.trim();
    const file = document.getElementById('upload-file').files[0];
    if (!name) return setError('upload-name', 'a name is required');
    if (!file) return setError('upload-file', 'choose a .wasm component');
    try {
      const loaded = await api('PUT', `/v1/connectors/${encodeURIComponent(name)}`, file);
      toast(`Loaded ${loaded.name} ${loaded.version}`);
      await connectorsView();
    } catch (error) {
      setError(error.message.includes('name') && !error.message.includes('component') ? 'upload-name' : 'upload-file', error.message);
    }
  });

  const select = h('select', { id: 'preview-connector' }, connectors.map((c) => h('option', { value: c.name }, c.name)));
  const output = h('pre', { id: 'preview-output' }, 'Run a preview to see the requests.');
  const preview = h('form', { class: 'card', id: 'preview' },
    h('h2', {}, 'Preview'),
    h('label', { for: 'preview-connector' }, 'Connector'), select,
    h('label', { for: 'preview-event' }, 'Event'), h('textarea', { id: 'preview-event', spellcheck: 'false', rows: 10 }, JSON.stringify(SAMPLE, null, 2)), errorFor('preview-event'),
    h('label', { for: 'preview-config' }, 'Config'), h('textarea', { id: 'preview-config', spellcheck: 'false', rows: 3 }, '{}'), errorFor('preview-config'),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Preview')),
    output);
  preview.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    const parse = (id) => {
      setError(id, null);
      try {
        return JSON.parse(document.getElementById(id).value);
      } catch (error) {
        setError(id, `not valid JSON (${error.message})`);
        return undefined;
      }
    };
    const event = parse('preview-event');
    const config = parse('preview-config');
    if (event === undefined || config === undefined) return;
    try {
      const result = await api('POST', `/v1/connectors/${encodeURIComponent(select.value)}/preview`, { event, config });
      output.textContent = JSON.stringify(result, null, 2);
    } catch (error) {
      setError('preview-event', error.message);
    }
  });

  show(
    h('h1', {}, 'Connectors'),
    h('div', { class: 'table-wrap' }, h('table', { id: 'connectors' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Version'), h('th', {}, 'Description'), h('th', { class: 'hide-narrow' }, 'Kind'), h('th', {}, ''))),
      h('tbody', {}, connectors.map((c) => h('tr', {},
        h('td', {}, c.name), h('td', {}, c.version), h('td', {}, c.description),
        h('td', { class: 'hide-narrow' }, c.builtin ? 'built-in' : 'uploaded'),
        h('td', {}, c.builtin ? null : actionButton('Remove', async () => {
          if (!confirm(`Remove the connector ${c.name}?`)) return;
          await api('DELETE', `/v1/connectors/${encodeURIComponent(c.name)}`);
          toast(`Removed ${c.name}`);
          await connectorsView();
        }, { class: 'danger', id: `remove-${c.name}` }))))))),
    upload, preview);
}
