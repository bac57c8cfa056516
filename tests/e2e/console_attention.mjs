// Browser test of the queue by attention: an incident that needs someone (here a P3 call past
// its dispatch target) comes first, above calls of higher priority that need nothing yet; its
// row says why and offers the action that answers it, and one click dispatches the nearest
// unit. Fails on any request to another origin. Screenshots go to $CONSOLE_ARTIFACTS (default
// tests/artifacts/console-attention).
//
// Env: CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD, CONSOLE_UNIT (the unit to be dispatched),
// CONSOLE_INCIDENT (the incident that needs attention), CONSOLE_OTHERS (ids of the incidents
// that do not, comma-separated).

import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const base = need('CONSOLE_URL').replace(/\/$/, '');
const origin = new URL(base).origin;
const user = need('CONSOLE_USER');
const password = need('CONSOLE_PASSWORD');
const unit = need('CONSOLE_UNIT');
const incident = need('CONSOLE_INCIDENT');
const others = need('CONSOLE_OTHERS').split(',');
const here = dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.CONSOLE_ARTIFACTS ?? join(here, '..', 'artifacts', 'console-attention');
mkdirSync(artifacts, { recursive: true });

const foreign = [];
const pageErrors = [];
let step = 'start';
let failed = false;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--autoplay-policy=no-user-gesture-required'],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 860 } });
  await context.addInitScript(() => {
    localStorage.setItem('dispatch.lang', 'en');
    // Count the tones the console plays (the real WebAudio graph still runs).
    const original = AudioContext.prototype.createOscillator;
    window.__tones = 0;
    AudioContext.prototype.createOscillator = function (...args) {
      window.__tones += 1;
      return original.apply(this, args);
    };
  });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin !== origin) {
      foreign.push(url);
      return route.abort('blockedbyclient');
    }
    return route.continue();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`) });

  step = 'log in';
  await page.goto(`${base}/`);
  await page.fill('#login-username', user);
  await page.fill('#login-password', password);
  await page.click('[data-testid=login]');
  await page.waitForSelector('.conn.online');

  step = 'the incident that needs someone comes first';
  const queue = page.locator('[data-testid=incident-queue] li[data-incident]');
  await page.waitForFunction(
    (id) => {
      const first = document.querySelector('[data-testid=incident-queue] li[data-incident]');
      return first?.getAttribute('data-incident') === id && /dispatch_overdue/.test(first.getAttribute('data-attention') ?? '');
    },
    incident,
    { timeout: 30_000 },
  );
  const order = await queue.evaluateAll((lis) => lis.map((li) => li.getAttribute('data-incident')));
  for (const other of others) {
    if (!order.includes(other)) throw new Error(`incident ${other} is missing from the queue: ${order}`);
  }
  const row = page.locator(`[data-testid=incident-queue] li[data-incident="${incident}"]`);
  const why = await row.locator('.reason[data-reason=dispatch_overdue]').textContent();
  if (!/not dispatched/.test(why ?? '') || !/\//.test(why ?? '')) {
    throw new Error(`the row does not say why and against which target: ${why}`);
  }
  const severe = await page.getAttribute('[data-testid=attention-counters]', 'data-severe');
  if (Number(severe) < 1) throw new Error(`the header counts ${severe} severe reasons`);
  await page.waitForSelector('[data-testid=alerts][data-alarm=on]');
  const banner = await page.locator('[data-testid=alerts] .alert-row').first().textContent();
  if (!/ATTENTION/.test(banner ?? '') || !banner.includes(`#${incident}`)) {
    throw new Error(`the banner does not name the incident: ${banner}`);
  }
  await shot('01-queue-by-attention');

  step = 'one click dispatches the nearest unit';
  await row.locator('button.act[data-action=dispatch_overdue]').click();
  await page.waitForFunction(
    ([id, callSign]) => {
      const li = document.querySelector(`[data-testid=incident-queue] li[data-incident="${id}"]`);
      return li && !/dispatch_overdue/.test(li.getAttribute('data-attention') ?? '') && (li.textContent ?? '').includes(callSign);
    },
    [incident, unit],
    { timeout: 30_000 },
  );
  await page.waitForSelector('[data-testid=alerts][data-alarm=off]', { state: 'attached' });
  await shot('02-dispatched');

  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join(' | ')}`);
  if (foreign.length) throw new Error(`requests to other origins: ${foreign.join(', ')}`);
  console.log(`console attention e2e ok: #${incident} first, ${unit} dispatched in one click`);
} catch (e) {
  failed = true;
  console.error(`console attention e2e FAILED at "${step}": ${e instanceof Error ? e.stack : e}`);
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) await pages[0].screenshot({ path: join(artifacts, 'failure.png') });
  } catch {
    /* best effort */
  }
} finally {
  await browser.close();
}
process.exit(failed || foreign.length ? 1 : 0);
