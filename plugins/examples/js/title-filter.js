// The title-filter example, in JavaScript: only records whose title contains the config's
// `pattern` (ignoring case) go out, reshaped to a small JSON object — the same bytes as the
// Rust (../rust) and Python (../python) versions.
//
// Build: `npm run build` (componentize-js, SpiderMonkey) or `npm run build:qjs` (jco's QuickJS
// backend: a tenth of the size, faster to load). Both implement wit/plugin.wit's `connector`.

import { log } from 'wasmhook:plugin/host@0.2.0';

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['pattern'],
  properties: { pattern: { type: 'string', minLength: 1, description: 'Text the title must contain (any case).' } },
};

export function describe() {
  return {
    name: 'title-filter',
    version: '1.0.0',
    description: 'Sends records whose title contains a pattern, as {event, id, matched, project, title}.',
    configSchema: JSON.stringify(schema),
  };
}

// A `result<_, plugin-error>` export: return the requests, or throw the error variant.
export function transform(eventText, configText) {
  const config = JSON.parse(configText);
  if (typeof config.pattern !== 'string') {
    throw { tag: 'invalid-config', val: 'pattern: expected a string' };
  }
  const event = JSON.parse(eventText);
  const title = event.currentValue?.title;
  if (typeof title !== 'string') {
    return []; // no title: nothing to match
  }
  if (!title.toLowerCase().includes(config.pattern.toLowerCase())) {
    log('debug', `${JSON.stringify(title)} does not contain ${JSON.stringify(config.pattern)}`);
    return [];
  }
  // Keys in alphabetical order, compact: the same bytes as the Rust and Python versions.
  const body = {
    event: event.event,
    id: event.id,
    matched: config.pattern,
    project: event.project?.id ?? null,
    title,
  };
  return [{ headers: [['content-type', 'application/json']], body: JSON.stringify(body) }];
}
