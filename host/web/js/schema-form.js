// A connector's config form, generated from the JSON Schema its `describe` returns.
//
// Top-level properties become fields, required ones first, then in the schema's order,
// labelled with their `title` (or the key, humanised): strings (a select when they have an
// `enum`, a password field when `writeOnly`), numbers, booleans, and arrays of objects as rows
// of small fields. Other arrays and objects are edited as JSON. A write-only value is never
// shown: leaving its field empty keeps the stored one.

import { errorFor, h, humanize, setError } from './dom.js';

const fieldId = (name) => `config-${name}`;

/** The label text of a property. */
const titleOf = (name, property) => property.title ?? humanize(name);

/** An input for a scalar property (string, enum, number); `read` returns its value or undefined. */
function scalar(id, property, current, { editing = false, label } = {}) {
  let input;
  let read;
  if (property.type === 'string' && property.enum) {
    input = h('select', { id, 'aria-label': label }, h('option', { value: '' }, '(default)'),
      property.enum.map((option) => h('option', { value: option, selected: option === current }, option)));
    read = () => input.value || undefined;
  } else if (property.type === 'integer' || property.type === 'number') {
    input = h('input', { type: 'number', id, placeholder: property.default ?? '', 'aria-label': label });
    if (current !== undefined) input.value = current;
    read = () => (input.value === '' ? undefined : Number(input.value));
  } else {
    const secret = property.writeOnly === true;
    input = h('input', {
      type: secret ? 'password' : 'text', id, autocomplete: 'off', 'aria-label': label,
      placeholder: secret && editing ? 'unchanged (write-only)' : property.default ?? '',
    });
    if (!secret && current !== undefined) input.value = current;
    read = () => (input.value === '' ? undefined : input.value);
  }
  return { input, read };
}

const isScalar = (p) => ['string', 'integer', 'number'].includes(p?.type);

/** Rows of small fields for an array of flat objects (Slack's label/value `fields`). */
function rowEditor(name, property, current) {
  const id = fieldId(name);
  const columns = Object.entries(property.items.properties);
  const rows = h('div', { class: 'rows', id });
  const readers = [];
  const addRow = (value = {}) => {
    const cells = columns.map(([key, column]) => ({ key, ...scalar(undefined, column, value[key], { label: titleOf(key, column) }) }));
    const row = h('div', { class: 'rows-row' }, cells.map((cell) => cell.input),
      h('button', { type: 'button', class: 'link remove-row', 'aria-label': 'Remove this row', onclick: () => {
        row.remove();
        readers.splice(readers.indexOf(reader), 1);
      } }, '✕'));
    const reader = () => Object.fromEntries(cells.map((cell) => [cell.key, cell.read()]).filter(([, v]) => v !== undefined));
    readers.push(reader);
    rows.append(row);
  };
  (Array.isArray(current) ? current : []).forEach(addRow);
  const header = h('div', { class: 'rows-row rows-head', 'aria-hidden': 'true' },
    columns.map(([key, column]) => h('span', {}, titleOf(key, column))), h('span'));
  const add = h('button', { type: 'button', class: 'add-row', onclick: () => addRow() }, `+ Add ${titleOf(name, property).toLowerCase().replace(/s$/, '')}`);
  return {
    element: [header, rows, add],
    read: () => (readers.length ? readers.map((read) => read()) : undefined),
  };
}

export function configForm(schema, value = {}, { editing = false } = {}) {
  const properties = schema?.properties ?? {};
  const required = new Set(schema?.required ?? []);
  const entries = Object.entries(properties);
  const ordered = [...entries.filter(([name]) => required.has(name)), ...entries.filter(([name]) => !required.has(name))];
  const readers = [];
  const fields = ordered.map(([name, property]) => {
    const id = fieldId(name);
    const title = titleOf(name, property);
    const hint = property.description ? h('span', { class: 'hint block' }, property.description) : null;
    const current = value[name];
    if (property.type === 'boolean') {
      const input = h('input', { type: 'checkbox', id, checked: current ?? property.default ?? false });
      readers.push([name, () => (input.checked === (property.default ?? false) && current === undefined ? undefined : input.checked)]);
      return h('div', {}, h('label', { class: 'inline', for: id }, input, h('span', {}, title, hint)), errorFor(id));
    }
    const label = h('label', { for: id }, title, required.has(name) ? ' *' : '', hint);
    if (isScalar(property)) {
      const { input, read } = scalar(id, property, current, { editing });
      readers.push([name, read]);
      return h('div', {}, label, input, errorFor(id));
    }
    const items = property.items;
    if (property.type === 'array' && items?.type === 'object' && Object.values(items.properties ?? {}).every(isScalar)) {
      const editor = rowEditor(name, property, current);
      readers.push([name, editor.read]);
      return h('div', {}, h('label', { for: id }, title, hint), editor.element, errorFor(id));
    }
    const input = h('textarea', { id, spellcheck: 'false', placeholder: property.type === 'array' ? '[]' : '{}' });
    if (current !== undefined) input.value = JSON.stringify(current, null, 2);
    readers.push([name, () => {
      if (input.value.trim() === '') return undefined;
      try {
        return JSON.parse(input.value);
      } catch (error) {
        throw Object.assign(new Error(`not valid JSON (${error.message})`), { field: `connector.config.${name}` });
      }
    }]);
    return h('div', {}, label, input, errorFor(id));
  });
  const element = h('div', { class: 'config-form' },
    fields.length ? fields : h('p', { class: 'muted' }, 'This connector takes no configuration.'));
  return {
    element,
    /** The config object, and the problems found reading it ([{field, message}]). */
    read() {
      const config = {};
      const problems = [];
      for (const [name, read] of readers) {
        try {
          const value = read();
          if (value !== undefined) config[name] = value;
        } catch (error) {
          problems.push({ field: error.field, message: error.message });
        }
      }
      return { value: config, problems };
    },
    /** Puts a problem with `connector.config.<name>…` under that field. */
    showError(path, message) {
      const name = path.replace(/^connector\.config\.?/, '').split(/[.[]/)[0];
      return setError(fieldId(name), message);
    },
    clearErrors() {
      for (const name of Object.keys(properties)) setError(fieldId(name), null);
    },
  };
}
