// The app through zapier-platform-core's own test harness, against a real running wasmhook
// (started by the host's end-to-end test, which passes WASMHOOK_URL, WASMHOOK_TOKEN — a user
// token — and WASMHOOK_INGEST_TOKEN). The Zap's target URL is a local server started here.

const assert = require('node:assert/strict');
const http = require('node:http');
const { test, before, after } = require('node:test');
const zapier = require('zapier-platform-core');
const schema = require('zapier-platform-core/src/tools/schema');

const App = require('../index');
const families = require('../families');

const appTester = zapier.createAppTester(App);
const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (the host's e2e test runs this against a live server)`);
  return value;
};
const authData = { baseUrl: env('WASMHOOK_URL'), token: env('WASMHOOK_TOKEN') };

let target;
const received = [];
before(async () => {
  target = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: JSON.parse(body) });
      response.end('ok');
    });
  });
  await new Promise((resolve) => target.listen(0, '127.0.0.1', resolve));
});
after(() => target.close());

const api = async (path, { method = 'GET', token = authData.token, body } = {}) => {
  const response = await fetch(`${authData.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  return { status: response.status, data: await response.json().catch(() => null) };
};

const eventually = async (what, check) => {
  for (let i = 0; i < 400; i++) {
    const value = await check();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
};

test('the definition passes the platform schema (what `zapier push` checks)', () => {
  assert.deepEqual(schema.validateApp(schema.compileApp(App)), []);
  assert.deepEqual(Object.keys(App.triggers), families.map((f) => f.key));
});

test('authentication: a good token passes, a bad one gets wasmhook\'s message', async () => {
  await appTester(App.authentication.test, { authData });
  await assert.rejects(
    appTester(App.authentication.test, { authData: { ...authData, token: 'wrong' } }),
    /token/i,
  );
});

test('subscribe, receive a live event, unsubscribe', async () => {
  const targetUrl = `http://127.0.0.1:${target.address().port}/zap`;
  const operation = App.triggers.todo.operation;
  const subscribeData = await appTester(operation.performSubscribe, {
    authData,
    targetUrl,
    inputData: { events: ['TODO_CREATED'], projectIds: ['project_zap'] },
  });
  assert.match(subscribeData.id, /^wh_/);

  const { status, data: webhook } = await api(`/v1/webhooks/${subscribeData.id}`);
  assert.equal(status, 200);
  assert.equal(webhook.origin, 'zapier');
  assert.equal(webhook.connector.name, 'zapier');
  assert.deepEqual(webhook.metadata, { events: ['TODO_CREATED'], projectIds: ['project_zap'] });

  const event = {
    id: 'evt_from_zap_test', event: 'TODO_CREATED', companyId: 'company_zap', projectId: 'project_zap',
    currentValue: { id: 'todo_9', title: 'Ship the Zapier app', todoList: { title: 'Launch' } },
  };
  const ingest = await api('/v1/events', { method: 'POST', token: env('WASMHOOK_INGEST_TOKEN'), body: event });
  assert.equal(ingest.status, 202);
  const delivery = await eventually('the delivery', () => received.find((r) => r.body.id === event.id));
  assert.ok(delivery.headers['webhook-signature'].startsWith('v1,'));

  const items = await appTester(operation.perform, { authData, cleanedRequest: delivery.body });
  assert.equal(items.length, 1);
  assert.equal(items[0].id, 'evt_from_zap_test');
  assert.equal(items[0].current_value__title, 'Ship the Zapier app');
  assert.equal(items[0].current_value__todo_list__title, 'Launch');

  await appTester(operation.performUnsubscribe, { authData, subscribeData });
  assert.equal((await api(`/v1/webhooks/${subscribeData.id}`)).status, 404);
});

test('every family\'s sample list is the zapier connector\'s real output', async () => {
  for (const family of families) {
    const items = await appTester(App.triggers[family.key].operation.performList, { authData, inputData: {} });
    assert.equal(items.length, 1, family.key);
    for (const [key, value] of Object.entries(family.sample)) {
      assert.deepEqual(items[0][key], value, `${family.key}: ${key}`);
    }
  }
});

test('subscribing with no events chosen subscribes to the whole family', async () => {
  const subscribeData = await appTester(App.triggers.comment.operation.performSubscribe, {
    authData, targetUrl: 'http://127.0.0.1:9/zap', inputData: {},
  });
  const { data: webhook } = await api(`/v1/webhooks/${subscribeData.id}`);
  assert.deepEqual(webhook.metadata.events, ['COMMENT_CREATED', 'COMMENT_DELETED', 'COMMENT_UPDATED']);
  await appTester(App.triggers.comment.operation.performUnsubscribe, { authData, subscribeData });
});
