// wasmhook's Zapier integration: one REST-hook trigger per event family.
//
// Authentication is a wasmhook user token (bearer) and the server's URL. Subscribing a Zap
// calls `POST /hooks/zapier`, which makes a webhook owned by the token's user that delivers
// through wasmhook's built-in `zapier` connector (one flat object per event, keyed by the
// event id, which Zapier dedupes on); turning the Zap off calls `DELETE /hooks/zapier/{id}`.
// If a Zap disappears without unsubscribing, wasmhook removes the webhook on Zapier's 410.

const { version } = require('./package.json');
const { version: platformVersion } = require('zapier-platform-core');
const families = require('./families');

const base = (bundle) => bundle.authData.baseUrl.replace(/\/+$/, '');

const addBearer = (request, z, bundle) => {
  if (bundle.authData.token) {
    request.headers = { ...request.headers, Authorization: `Bearer ${bundle.authData.token}` };
  }
  return request;
};

// wasmhook answers errors as {"error": {"code", "message"}}: show the message in the Zap editor.
const explainErrors = (response, z) => {
  if (response.status >= 400) {
    let message = `wasmhook answered ${response.status}`;
    try {
      message = JSON.parse(response.content).error.message || message;
    } catch (_) {
      // not JSON: keep the status line
    }
    throw new z.errors.Error(message, 'WasmhookError', response.status);
  }
  return response;
};

const authentication = {
  type: 'custom',
  fields: [
    { key: 'baseUrl', label: 'wasmhook URL', required: true, type: 'string', helpText: 'Where your wasmhook server answers, e.g. https://hooks.example.com' },
    { key: 'token', label: 'API token', required: true, type: 'password', helpText: 'A user token (`wasmhook token create --scope user`).' },
  ],
  test: async (z, bundle) => {
    const response = await z.request({ url: `${base(bundle)}/v1/webhooks`, params: { limit: 1 } });
    return response.data;
  },
  connectionLabel: (z, bundle) => base(bundle),
};

const trigger = (family) => ({
  key: family.key,
  noun: family.noun,
  display: {
    label: `New ${family.noun} Event`,
    description: `Triggers when a ${family.noun.toLowerCase()} is created, changed or deleted in wasmhook.`,
  },
  operation: {
    type: 'hook',
    inputFields: [
      { key: 'events', label: 'Events', list: true, required: false, choices: family.events, helpText: 'Leave empty for every event of this kind.' },
      { key: 'projectIds', label: 'Project IDs', list: true, required: false, helpText: 'Leave empty for every project.' },
    ],
    performSubscribe: async (z, bundle) => {
      const chosen = bundle.inputData.events || [];
      const response = await z.request({
        url: `${base(bundle)}/hooks/zapier`,
        method: 'POST',
        body: {
          targetUrl: bundle.targetUrl,
          events: chosen.length ? chosen : family.events,
          projectIds: bundle.inputData.projectIds || [],
        },
      });
      return response.data;
    },
    performUnsubscribe: async (z, bundle) => {
      await z.request({ url: `${base(bundle)}/hooks/zapier/${bundle.subscribeData.id}`, method: 'DELETE' });
      return {};
    },
    perform: (z, bundle) => [bundle.cleanedRequest],
    performList: async (z, bundle) => {
      const response = await z.request({
        url: `${base(bundle)}/v1/connectors/zapier/preview`,
        method: 'POST',
        body: { event: family.sampleEvent, config: {} },
      });
      return (response.data.requests || []).map((request) => JSON.parse(request.body));
    },
    sample: family.sample,
  },
});

module.exports = {
  version,
  platformVersion,
  authentication,
  beforeRequest: [addBearer],
  afterResponse: [explainErrors],
  triggers: Object.fromEntries(families.map((family) => [family.key, trigger(family)])),
};
