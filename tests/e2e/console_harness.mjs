// What every browser test of the dispatcher console shares: Debian's chromium headless with a
// page that may reach only our own server (any other request fails the run: the console must
// work with no internet), page errors and CSP refusals collected, the tones the console plays
// counted (window.__tones), a screenshot helper, a screenshot on failure and the exit code.
//
// Env: CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD; CONSOLE_ARTIFACTS (default
// tests/artifacts/<name>), CHROMIUM (default /usr/bin/chromium).

import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

/** The environment variable `name`, which must be set. */
export const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

/**
 * Runs `body({ page, base, user, password, shot, step, login, artifacts, openPage })` in a fresh
 * browser and exits: 0 after printing `<label> e2e ok: <what body returned>`, 1 after
 * `<label> e2e FAILED at "<step>"`. `english` starts the console in English as a saved choice
 * (else it follows the browser's `locale`); `openPage(locale)` opens another page in a profile of
 * its own; `extraOrigins` are origins besides the console's that the run may reach (a test's own
 * pages).
 */
export async function runConsole(
  { label, artifactsName, english = true, locale = 'en-US', extraOrigins = [] },
  body,
) {
  const base = need('CONSOLE_URL').replace(/\/$/, '');
  const origin = new URL(base).origin;
  const user = need('CONSOLE_USER');
  const password = need('CONSOLE_PASSWORD');
  const here = dirname(fileURLToPath(import.meta.url));
  const artifacts = process.env.CONSOLE_ARTIFACTS ?? join(here, '..', 'artifacts', artifactsName);
  mkdirSync(artifacts, { recursive: true });
  const foreign = [];
  const pageErrors = [];
  let current = 'start';
  let failed = false;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--autoplay-policy=no-user-gesture-required'],
  });
  try {
    // A fresh browser profile speaking `locale`, held to our origin like every page of the run.
    const openPage = async (locale) => {
      const context = await browser.newContext({
        ignoreHTTPSErrors: true,
        viewport: { width: 1400, height: 860 },
        locale,
      });
      await context.addInitScript((en) => {
        if (en) localStorage.setItem('dispatch.lang', 'en');
        // Count the tones the console plays (the real WebAudio graph still runs).
        const original = AudioContext.prototype.createOscillator;
        window.__tones = 0;
        AudioContext.prototype.createOscillator = function (...args) {
          window.__tones += 1;
          return original.apply(this, args);
        };
      }, english);
      await context.route('**/*', (route) => {
        const url = route.request().url();
        if (new URL(url).origin !== origin && !extraOrigins.includes(new URL(url).origin)) {
          foreign.push(url);
          return route.abort('blockedbyclient');
        }
        return route.continue();
      });
      context.on('websocket', (ws) => {
        if (new URL(ws.url()).host !== new URL(base).host) foreign.push(ws.url());
      });
      const page = await context.newPage();
      page.setDefaultTimeout(20_000);
      page.on('pageerror', (e) => pageErrors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) pageErrors.push(m.text());
      });
      return page;
    };
    const page = await openPage(locale);
    const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`) });
    const step = (name) => {
      current = name;
    };
    const login = async () => {
      step('log in');
      await page.goto(`${base}/`);
      await page.fill('#login-username', user);
      await page.fill('#login-password', password);
      await page.click('[data-testid=login]');
      await page.waitForSelector('.conn.online');
    };
    const done = await body({ page, base, user, password, shot, step, login, artifacts, openPage });
    if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join(' | ')}`);
    if (foreign.length) throw new Error(`requests to other origins: ${foreign.join(', ')}`);
    console.log(`${label} e2e ok: ${done}`);
  } catch (e) {
    failed = true;
    console.error(`${label} e2e FAILED at "${current}": ${e instanceof Error ? e.stack : e}`);
    if (foreign.length) console.error(`requests to other origins: ${foreign.join(', ')}`);
    if (pageErrors.length) console.error(`page errors: ${pageErrors.join(' | ')}`);
    try {
      const pages = browser.contexts().flatMap((c) => c.pages());
      if (pages[0]) await pages[0].screenshot({ path: join(artifacts, 'failure.png') });
    } catch {
      /* best effort */
    }
  } finally {
    await browser.close();
  }
  // Foreign requests fail the run even if every step passed.
  process.exit(failed || foreign.length ? 1 : 0);
}
