// Browser test of escalations on the dispatcher console: an order that no tablet receives
// escalates; the console must show it as a banner with a tone (WebAudio) until an operator
// acknowledges it. Fails on any request to another origin. Screenshots go to
// $CONSOLE_ARTIFACTS (default tests/artifacts/console-alerts).
//
// Env: CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD, CONSOLE_UNIT (the unit whose order escalates).

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
const here = dirname(fileURLToPath(import.meta.url));
const artifacts = process.env.CONSOLE_ARTIFACTS ?? join(here, '..', 'artifacts', 'console-alerts');
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

  step = 'see the escalation banner and hear the tone';
  const row = page.locator('[data-testid=alerts] .alert-row', { hasText: unit });
  await row.first().waitFor({ timeout: 60_000 });
  await page.waitForSelector('[data-testid=alerts][data-alarm=on]');
  await page.waitForFunction(() => window.__tones > 0);
  const text = await row.first().textContent();
  if (!/not received|not acknowledged/.test(text ?? '')) throw new Error(`banner does not say why: ${text}`);
  await shot('01-escalation');

  step = 'acknowledge it';
  await row.first().locator('button.ack').click();
  await page.waitForSelector('[data-testid=alerts] .alert-row', { state: 'detached' });
  await page.waitForSelector('[data-testid=alerts][data-alarm=off]', { state: 'attached' });
  const tones = await page.evaluate(() => window.__tones);
  await page.waitForTimeout(3000);
  if ((await page.evaluate(() => window.__tones)) !== tones) throw new Error('the tone goes on after acknowledging');
  await shot('02-acknowledged');

  step = 'after a reload the alert stays acknowledged';
  await page.reload();
  await page.waitForSelector('.conn.online');
  await page.waitForTimeout(500);
  if (await page.locator('[data-testid=alerts] .alert-row', { hasText: unit }).count()) {
    throw new Error('the acknowledged alert came back after a reload');
  }

  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join(' | ')}`);
  if (foreign.length) throw new Error(`requests to other origins: ${foreign.join(', ')}`);
  console.log(`console alerts e2e ok: escalation of ${unit} shown, sounded and acknowledged`);
} catch (e) {
  failed = true;
  console.error(`console alerts e2e FAILED at "${step}": ${e instanceof Error ? e.stack : e}`);
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
