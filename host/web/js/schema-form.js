// A connector's config form, generated from the JSON Schema its `describe` returns.
//
// Top-level properties become fields: strings (a select when they have an `enum`, a password
// field when `writeOnly`), numbers, booleans; arrays and objects are edited as JSON. A
// write-only value is never shown: leaving its field empty keeps the stored one.

import { errorFor, h, setError } from './dom.js';

const fieldId = (name) => `config-${name}`;

export function configForm(schema, value = {}, { editing = false } = {}) {
  const properties = schema?.properties ?? {};
  const required = new Set(schema?.required ?? []);
  const readers = [];
  const fields = Object.entries(properties).map(([name, property]) => {
    const id = fieldId(name);
    const hint = property.description ? h('span', { class: 'hint' }, ` — ${property.description}`) : null;
    const label = h('label', { for: id }, name, required.has(name) ? ' *' : '', hint);
    const current = value[name];
    let input;
    let read;
    if (property.type === 'boolean') {
      const checked = current ?? property.default ?? false;
      input = h('input', { type: 'checkbox', id, checked });
      read = () => (input.checked === (property.default ?? false) && current === undefined ? undefined : input.checked);
      readers.push([name, read]);
      return h('div', {}, h('label', { class: 'inline', for: id }, input, name, hint), errorFor(id));
    }
    if (property.type === 'string' && property.enum) {
      input = h('select', { id }, h('option', { value: '' }, '(default)'),
        property.enum.map((option) => h('option', { value: option, selected: option === current }, option)));
      read = () => input.value || undefined;
    } else if (property.type === 'string') {
      const secret = property.writeOnly === true;
      input = h('input', {
        type: secret ? 'password' : 'text', id, autocomplete: 'off',
        placeholder: secret && editing ? 'unchanged (write-only)' : property.default ?? '',
      });
      if (!secret && current !== undefined) input.value = current;
      read = () => input.value === '' ? undefined : input.value;
    } else if (property.type === 'integer' || property.type === 'number') {
      input = h('input', { type: 'number', id, placeholder: property.default ?? '' });
      if (current !== undefined) input.value = current;
      read = () => input.value === '' ? undefined : Number(input.value);
    } else {
      input = h('textarea', { id, spellcheck: 'false', placeholder: property.type === 'array' ? '[]' : '{}' });
      if (current !== undefined) input.value = JSON.stringify(current, null, 2);
      read = () => {
        if (input.value.trim() === '') return undefined;
        try {
          return JSON.parse(input.value);
        } catch (error) {
          throw Object.assign(new Error(`connector.config.${name}: not valid JSON (${error.message})`), { field: id });
        }
      };
    }
    readers.push([name, read]);
    return h('div', {}, label, input, errorFor(id));
  });
  const element = h('div', { class: 'config-form' },
    fields.length ? fields : h('p', { class: 'muted' }, 'This connector takes no configuration.'));
  return {
    element,
    /** The config object (throws an Error with `field` when a JSON field does not parse). */
    read() {
      const config = {};
      for (const [name, read] of readers) {
        const value = read();
        if (value !== undefined) config[name] = value;
      }
      return config;
    },
    /** Puts an API error about `connector.config.<name>…` under that field. */
    showError(path, message) {
      const name = path.replace(/^connector\.config\.?/, '').split(/[.[]/)[0];
      return setError(fieldId(name), message);
    },
    clearErrors() {
      for (const name of Object.keys(properties)) setError(fieldId(name), null);
    },
  };
}
