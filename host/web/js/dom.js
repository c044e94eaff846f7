// Building DOM without innerHTML: every text from the API goes in as text, never as markup.

/** h('a', {href: '#/x', class: 'button'}, 'text', child, …); `on*` attributes take functions. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the main view's content and moves focus there (for keyboard and screen readers). */
export function show(...children) {
  const view = document.getElementById('view');
  view.replaceChildren();
  append(view, children);
  view.focus({ preventScroll: true });
}

/**
 * Navigation tickets: a view takes one before it fetches and paints only if it is still the
 * latest, so a slow answer for the page the user left never paints over the one they are on.
 */
let currentTicket = 0;
export const navigation = {
  /** A new navigation: views started before it are stale. */
  begin: () => ++currentTicket,
  /** The current navigation's ticket (a refresh of the same page takes this). */
  ticket: () => currentTicket,
  stale: (ticket) => ticket !== currentTicket,
};

/**
 * A button that runs `run` once per click: disabled while it runs, enabled again whatever
 * happens, its failure said in a toast.
 */
export function actionButton(label, run, attributes = {}) {
  const button = h('button', { type: 'button', ...attributes }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await run();
    } catch (error) {
      toast(error.message);
    } finally {
      // The view may have been replaced meanwhile; re-enabling a detached button is harmless.
      button.disabled = Boolean(attributes.disabled);
    }
  });
  return button;
}

/** PLUGIN_ERROR, plugin_error, lastDelivery → "Plugin error", "Last delivery". */
export function humanize(key) {
  const words = String(key).replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/[_-]+/g, ' ').trim().toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function badge(text) {
  return h('span', { class: `badge ${text}` }, text);
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '—';
}

let toastTimer;
export function toast(message) {
  const element = document.getElementById('toast');
  element.textContent = message;
  element.classList.add('show');
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => element.classList.remove('show'), 2500);
}

/** An error line under a field, tied to it for assistive technology. */
export function errorFor(id) {
  return h('div', { class: 'error', id: `${id}-error`, role: 'alert' });
}

/** Shows `message` under the field `id` (or clears it). */
export function setError(id, message) {
  const line = document.getElementById(`${id}-error`);
  const field = document.getElementById(id);
  if (line) line.textContent = message ?? '';
  if (field) {
    if (message) {
      field.setAttribute('aria-invalid', 'true');
      field.setAttribute('aria-describedby', `${id}-error`);
    } else {
      field.removeAttribute('aria-invalid');
    }
  }
  return Boolean(line);
}
