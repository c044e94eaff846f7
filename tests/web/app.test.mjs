// The web app in Debian's headless Chromium, driven by Playwright, against the real wasmhook
// binary. The host's e2e test starts the server and two receivers and passes:
// WASMHOOK_URL, WASMHOOK_TOKEN (a user token), WASMHOOK_OPERATOR_TOKEN, RECEIVER_URL (answers
// 200), FAILING_URL (answers 500 five times, then 200), EXAMPLE_WASM (a component to upload)
// and SCREENSHOTS (a folder).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (the host's e2e test runs this)`);
  return value;
};
const base = env('WASMHOOK_URL');
const screenshots = env('SCREENSHOTS');

let browser;
let page;
const problems = [];
const refusals = new Set();

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1200, height: 860 } });
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    // Chromium logs every 4xx answer as "Failed to load resource"; the tests cause two kinds on
    // purpose (a refused token, invalid input), counted apart from real errors.
    const refused = /Failed to load resource: the server responded with a status of (\d+)/.exec(message.text());
    if (refused) refusals.add(Number(refused[1]));
    else problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
});

after(async () => {
  await browser?.close();
});

const shoot = (name) => page.screenshot({ path: `${screenshots}/${name}.png`, fullPage: true });

async function signIn(token) {
  await page.goto(base);
  await page.locator('#token').fill(token);
  await page.keyboard.press('Enter'); // keyboard only
  await page.locator('h1', { hasText: 'Webhooks' }).waitFor();
}

async function createWebhook(name, url, { events = ['TODO_CREATED'] } = {}) {
  await page.goto(`${base}/#/webhooks/new`);
  await page.locator('#name').fill(name);
  await page.locator('#url').fill(url);
  for (const event of events) await page.locator(`input[name=event][value=${event}]`).check();
  await page.getByRole('button', { name: 'Create webhook' }).click();
  const secret = await page.locator('#secret-value').textContent();
  assert.match(secret, /^whsec_/);
  await page.getByRole('link', { name: 'Go to the webhook' }).click();
  await page.locator('#health').waitFor();
  return page.url().split('/').pop();
}

const badge = () => page.locator('#health .badge').textContent();

/** How many pixels of `color` (#rrggbb) the canvases under `selector` hold: bars and points are drawn, not in the DOM. */
const pixels = (selector, color) => page.evaluate(([selector, color]) => {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16));
  let count = 0;
  for (const canvas of document.querySelectorAll(`${selector} canvas`)) {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) if (data[i] === r && data[i + 1] === g && data[i + 2] === b) count++;
  }
  return count;
}, [selector, color]);

/** How far the page scrolls sideways (0 when it fits). */
const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

async function waitForBadge(wanted) {
  await page.waitForFunction((text) => document.querySelector('#health .badge')?.textContent === text, wanted, { timeout: 20000 });
}

test('sign in, create a webhook through the form, deliver a test event, see it in the log', async () => {
  await page.goto(base);
  await page.locator('#token').fill('wrong-token');
  await page.keyboard.press('Enter');
  await page.locator('#token-error').filter({ hasText: /token/i }).waitFor();
  await shoot('sign-in');

  await signIn(env('WASMHOOK_TOKEN'));
  // A first visit says what a webhook is and offers to make one.
  await page.locator('#empty button', { hasText: 'Create your first webhook' }).waitFor();
  // Bad input: the API's message shows next to the field it names, nothing is created.
  await page.goto(`${base}/#/webhooks/new`);
  await page.locator('#name').fill('Broken');
  await page.locator('#url').fill('not a url');
  await page.getByRole('button', { name: 'Create webhook' }).click();
  await page.locator('#url-error').filter({ hasText: 'not a URL' }).waitFor();
  assert.equal(await page.locator('#url').getAttribute('aria-invalid'), 'true');
  // Every field at fault at once, each under its field.
  await page.locator('#name').fill('');
  await page.locator('#rateLimit').fill('0');
  await page.getByRole('button', { name: 'Create webhook' }).click();
  await page.locator('#rateLimit-error').filter({ hasText: 'at least 1' }).waitFor();
  for (const field of ['name', 'url', 'rateLimit']) {
    assert.notEqual(await page.locator(`#${field}-error`).textContent(), '', `${field} has its error`);
  }
  await page.locator('#name').fill('Broken');
  await page.locator('#rateLimit').fill('');
  // The URL field explains what each kind of destination takes, as it is typed.
  await page.locator('#url').fill('amqps://app:pw@rabbit.example.com/prod');
  await page.locator('#url-help').filter({ hasText: 'RabbitMQ' }).filter({ hasText: 'routingKey' }).waitFor();
  await page.locator('#url').fill('mqtt://broker.example.com/plant/7');
  await page.locator('#url-help').filter({ hasText: 'MQTT 3.1.1 gets the envelope' }).waitFor();
  // Event descriptions are visible, and a family is chosen with one box.
  const tags = page.locator('fieldset.family').filter({ has: page.locator('legend', { hasText: /^Tags$/ }) });
  assert.notEqual(await tags.locator('.hint').first().textContent(), '', 'each event says what it is');
  await tags.locator('.select-all').check();
  assert.ok(await page.locator('input[name=event][value=TAG_CREATED]').isChecked());
  await tags.locator('.select-all').uncheck();
  // Slack's label/value pairs are rows, not JSON; its URL field says whose URL it is.
  await page.locator('#connector').selectOption('slack');
  await page.locator('label[for=config-url]', { hasText: 'Slack incoming-webhook URL' }).waitFor();
  await page.getByRole('button', { name: '+ Add field' }).click();
  assert.equal(await page.locator('#config-fields .rows-row').count(), 1);
  // The connector's config form comes from its schema; its errors land on its fields.
  await page.locator('#connector').selectOption('crm');
  await page.locator('#url').fill(env('RECEIVER_URL'));
  await page.locator('#config-method').selectOption('PATCH');
  await page.getByRole('button', { name: 'Create webhook' }).click();
  await page.locator('#config-properties-error').filter({ hasText: 'properties' }).waitFor();
  await shoot('form-errors');
  await page.locator('#connector').selectOption('json');

  const id = await createWebhook('Orders to the warehouse', env('RECEIVER_URL'));
  assert.equal(await badge(), 'HEALTHY');
  await page.locator('#send-test').click();
  const delivery = page.locator('details.delivery').first();
  await delivery.locator('.badge', { hasText: 'succeeded' }).waitFor({ timeout: 20000 });
  await delivery.locator('.event-type', { hasText: 'TODO_CREATED' }).waitFor();
  await delivery.locator('summary').click();
  await delivery.locator('.timeline li.ok', { hasText: 'HTTP 200' }).first().waitFor();
  await page.locator('#chart .uplot').first().waitFor();
  // The day's totals in the legend (not "--"), the delivery drawn as a bar in its colour.
  await page.waitForFunction(() => Number(document.querySelector('#legend-deliveries li strong')?.textContent) >= 1);
  assert.match(await page.locator('#legend-latency').textContent(), /p50 \d+ ms/);
  assert.ok(await pixels('#chart .uplot:first-of-type', '#16a34a') > 20, 'a green bar for the delivered event');
  assert.ok(Number(await page.locator('#counts .count.ok strong').textContent()) >= 1, 'the delivered count at a glance');
  await shoot('webhook');
  // The page refreshes itself every 2 s: the chart is updated in place, not drawn again.
  await page.evaluate(() => { document.querySelector('#chart .uplot').dataset.kept = 'yes'; });
  await page.waitForTimeout(4500);
  assert.equal(await page.locator('#chart .uplot').first().getAttribute('data-kept'), 'yes', 'the same chart after refreshes');
  // The URL moved to the webhook when it was created: a reload opens it.
  await page.reload();
  await page.locator('#health').waitFor();

  await page.goto(`${base}/#/webhooks`);
  await page.locator(`#webhooks a[href="#/webhooks/${id}"]`).waitFor();
  await page.locator('#webhooks .badge', { hasText: 'succeeded' }).waitFor();
  await shoot('webhooks');
});

test('a failing receiver turns the badge UNHEALTHY, then DISABLED; re-enable and recover', async () => {
  await createWebhook('Flaky CRM', env('FAILING_URL'));
  await page.locator('#send-test').click();
  await waitForBadge('UNHEALTHY');
  await waitForBadge('DISABLED');
  await page.locator('details.delivery .badge', { hasText: 'failed' }).waitFor({ timeout: 20000 });
  // The banner says why and what to do; Recover waits for re-enabling.
  await page.locator('#banner', { hasText: 'disabled' }).locator('.last-error', { hasText: '500' }).waitFor();
  assert.ok(await page.locator('#recover').isDisabled(), 'Recover is off while the webhook is disabled');
  await shoot('webhook-disabled');
  await page.locator('#enable').click();
  await waitForBadge('HEALTHY'); // the health check goes first, and now the receiver answers 200
  await page.locator('#recover').click();
  // The recovered test event is delivered: no failed delivery is left in the log.
  await page.waitForFunction(() => {
    const badges = [...document.querySelectorAll('details.delivery .badge')].map((b) => b.textContent);
    return badges.length >= 2 && !badges.includes('failed') && !badges.includes('pending');
  }, null, { timeout: 20000 });
});

test('operators manage connectors: list and preview', async () => {
  await page.evaluate(() => sessionStorage.clear());
  await signIn(env('WASMHOOK_OPERATOR_TOKEN'));
  await page.locator('#nav-connectors').waitFor({ state: 'visible' });
  await page.locator('#nav-connectors').click();
  await page.locator('#connectors td', { hasText: /^zapier$/ }).waitFor();
  await page.locator('#preview-connector').selectOption('zapier');
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.locator('#preview-output', { hasText: 'current_value__title' }).waitFor();
  await page.locator('#upload-name').fill('title-filter');
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.locator('#upload-file-error', { hasText: 'choose a .wasm component' }).waitFor();
  // A real component: listed once loaded, and previewed.
  await page.locator('#upload-file').setInputFiles(env('EXAMPLE_WASM'));
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.locator('#connectors td', { hasText: /^title-filter$/ }).waitFor();
  await page.locator('#preview-connector').selectOption('title-filter');
  await page.locator('#preview-config').fill('{"pattern": "launch"}');
  await page.getByRole('button', { name: 'Preview' }).click();
  await page.locator('#preview-output', { hasText: '\\"matched\\":\\"launch\\"' }).waitFor();
  await shoot('connectors');
  // An uploaded connector can be removed from the page.
  page.once('dialog', (dialog) => dialog.accept());
  await page.locator('#remove-title-filter').click();
  await page.locator('#connectors td', { hasText: /^title-filter$/ }).waitFor({ state: 'detached' });
});

test('narrow screens', async () => {
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(`${base}/#/webhooks`);
  await page.locator('#webhooks').waitFor();
  assert.ok(await overflow() <= 1, `the list scrolls sideways by ${await overflow()}px at 390px wide`);
  await shoot('webhooks-narrow');
  await page.locator('#webhooks a').first().click();
  await page.locator('#chart .uplot').nth(1).waitFor();
  assert.ok(await overflow() <= 1, `a webhook's page scrolls sideways by ${await overflow()}px at 390px wide`);
  const latency = await pixels('#chart .uplot:nth-of-type(2)', '#2563eb') + await pixels('#chart .uplot:nth-of-type(2)', '#dc2626');
  assert.ok(latency > 0, 'the latency chart draws its points at 390px');
  await shoot('webhook-narrow');
  await page.setViewportSize({ width: 1200, height: 860 });
});

test('no console errors', () => {
  assert.deepEqual(problems, []);
  assert.deepEqual([...refusals].sort(), [400, 401], 'only the refusals the tests asked for');
});
