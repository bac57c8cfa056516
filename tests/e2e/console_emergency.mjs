// Browser test of an officer's emergency on the dispatcher console: the highest alert, first in
// the banner with a tone, the map taken to the officer and the emergency incident selected, until
// an operator acknowledges it. Fails on any request to another origin. Screenshots go to
// $CONSOLE_ARTIFACTS (default tests/artifacts/console-emergency).
//
// Env: CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD, CONSOLE_UNIT (the officer's unit),
// CONSOLE_INCIDENT (the emergency incident the server opened).

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
const here = dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.CONSOLE_ARTIFACTS ?? join(here, '..', 'artifacts', 'console-emergency');
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

  step = 'the emergency is the first alert, with a tone';
  const row = page.locator('[data-testid=alerts] .alert-row').first();
  await row.waitFor({ timeout: 30_000 });
  if ((await row.getAttribute('data-kind')) !== 'officer_emergency') {
    throw new Error(`the first alert is ${await row.getAttribute('data-kind')}`);
  }
  const text = (await row.textContent()) ?? '';
  if (!text.includes(unit) || !/EMERGENCY/.test(text) || !text.includes(`#${incident}`)) {
    throw new Error(`the banner does not say who and where: ${text}`);
  }
  await page.waitForFunction(() => window.__tones > 0);

  step = 'its incident is selected';
  await page.waitForFunction(
    (id) => (document.querySelector('[data-testid=incident-panel] header h2')?.textContent ?? '').includes(`#${id}`),
    incident,
    { timeout: 10_000 },
  );
  await shot('01-emergency');

  step = 'acknowledge it';
  await row.locator('button.ack').click();
  await page.waitForSelector('[data-testid=alerts] .alert-row[data-kind=officer_emergency]', { state: 'detached' });
  await shot('02-acknowledged');

  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join(' | ')}`);
  if (foreign.length) throw new Error(`requests to other origins: ${foreign.join(', ')}`);
  console.log(`console emergency e2e ok: ${unit} shown first, sounded, selected and acknowledged`);
} catch (e) {
  failed = true;
  console.error(`console emergency e2e FAILED at "${step}": ${e instanceof Error ? e.stack : e}`);
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
