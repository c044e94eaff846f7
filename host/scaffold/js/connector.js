// The {{name}} connector: sends each event's type, id, project and record title as JSON, with
// the webhook's optional `label`; an event without a current value (a deletion) sends nothing.
// Change `transform` to shape the requests your target expects. The contract is wit/plugin.wit.

import { log } from 'wasmhook:plugin/host@0.2.0';

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    label: { type: 'string', title: 'Label', description: 'Added to every message as `label`.' },
  },
};

export function describe() {
  return {
    name: '{{name}}',
    version: '0.1.0',
    description: "Sends each event's type, id, project and title as JSON.",
    configSchema: JSON.stringify(schema),
  };
}

// Returns the requests to send, or throws a `plugin-error` variant such as
// `{ tag: 'invalid-config', val: 'why' }`.
export function transform(eventText, configText) {
  const config = JSON.parse(configText);
  const event = JSON.parse(eventText);
  if (event.currentValue == null) {
    log('info', 'no current value (a deletion): nothing to send');
    return [];
  }
  // Keys in alphabetical order, compact: the same bytes as the Rust and Python templates send.
  const body = {
    event: event.event,
    id: event.id,
    label: config.label ?? null,
    project: event.project?.id ?? null,
    title: typeof event.currentValue.title === 'string' ? event.currentValue.title : null,
  };
  return [{ headers: [['content-type', 'application/json']], body: JSON.stringify(body) }];
}
