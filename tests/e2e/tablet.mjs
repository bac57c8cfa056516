// Browser test of the field tablet UI (run by tests/tests/tablet_ui.rs, which starts the
// server and the `field-client run --ui` process and dispatches one order first).
//
// usage: node tablet.mjs UI_URL ARTIFACT_DIR
// Drives Debian's chromium headless: the full-screen order alert, acknowledging it, accepting,
// reporting en route / on scene / cleared, sending a text, the emergency control (held 2 s),
// Korean and the night theme; that the key is taken out of the address bar, and that another
// page can neither frame the UI nor call its API.
// Screenshots go to ARTIFACT_DIR. Prints `ok` on success; any failure exits non-zero.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [url, artifacts] = process.argv.slice(2);
if (!url || !artifacts) {
  console.error('usage: node tablet.mjs UI_URL ARTIFACT_DIR');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `tablet-${name}.png`), fullPage: true });
const step = (text) => console.error(`tablet.mjs: ${text}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--autoplay-policy=no-user-gesture-required', '--no-sandbox'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-GB', hasTouch: true });
  const page = await context.newPage();
  page.on('pageerror', (e) => { console.error(`page error: ${e.message}`); process.exitCode = 1; });
  // Count the alert sound: every beep starts oscillators on the page's AudioContext.
  await page.addInitScript(() => {
    window.__beeps = 0;
    const start = OscillatorNode.prototype.start;
    OscillatorNode.prototype.start = function (...a) { window.__beeps += 1; return start.apply(this, a); };
  });
  await page.goto(url);
  if (page.url().includes('#')) throw new Error(`the key stays in the address bar: ${page.url()}`);

  step('waiting for the order alert');
  const alert = page.locator('#alert');
  await alert.waitFor({ state: 'visible', timeout: 20000 });
  await page.locator('#alert-where').filter({ hasText: 'Mannerheimintie 5' }).waitFor({ timeout: 5000 });
  await page.locator('#alert-detail').filter({ hasText: 'DANGER · Dog: Aggressive dog in the yard' }).waitFor({ timeout: 5000 });
  const kind = await page.locator('#alert-kind').textContent();
  if (!kind.includes('NEW ORDER')) throw new Error(`alert kind is ${JSON.stringify(kind)}`);
  // The sound repeats until the alert is confirmed.
  await page.waitForFunction(() => window.__beeps >= 4, null, { timeout: 10000 });
  await shot(page, '1-alert');

  step('confirming the alert');
  await page.locator('#alert-ack').tap();
  await alert.waitFor({ state: 'hidden', timeout: 10000 });
  let beepsAfter = await page.evaluate(() => window.__beeps);
  const card = page.locator('#order-card');
  await card.waitFor({ state: 'visible' });
  const href = await page.locator('#navigate').getAttribute('href');
  if (!/^geo:60\.1\d*,24\.9\d*\?q=/.test(href)) throw new Error(`navigate link is ${href}`);
  await shot(page, '2-order');

  await page.locator('#order-hazards li.danger').filter({ hasText: 'Aggressive dog in the yard' }).waitFor();
  const callback = await page.locator('#order-callback').textContent();
  if (!callback.includes('+358 40 123 4567')) throw new Error(`callback shown as ${JSON.stringify(callback)}`);
  if (!/^0:\d\d$/.test(await page.locator('#order-elapsed').textContent())) throw new Error('no elapsed time on the order');

  step('accepting');
  await page.locator('#accept').tap();
  await page.locator('#order-state').filter({ hasText: /^Accepted(?! \()/ }).waitFor({ timeout: 15000 });

  step('an update from the control room (sent once the order is accepted)');
  await page.locator('#alert-kind').filter({ hasText: 'INCIDENT UPDATED' }).waitFor({ timeout: 20000 });
  await page.locator('#alert-detail').filter({ hasText: 'Suspect armed with a knife' }).waitFor();
  await shot(page, '2b-update');
  await page.locator('#alert-ack').tap();
  await alert.waitFor({ state: 'hidden', timeout: 10000 });
  await page.locator('#order-narrative li').filter({ hasText: 'Suspect armed with a knife' }).waitFor();
  // The update sounded too; from here on nothing may.
  beepsAfter = await page.evaluate(() => window.__beeps);

  step("the incident's type in both languages");
  await page.locator('#order-kind').filter({ hasText: /^burglary$/ }).waitFor({ timeout: 5000 });
  await page.locator('#lang').tap();
  // From the protocol's one list of type names, which the console uses too.
  await page.locator('#order-kind').filter({ hasText: '침입 절도' }).waitFor({ timeout: 5000 });
  await page.locator('#lang').tap();
  await page.locator('#order-kind').filter({ hasText: /^burglary$/ }).waitFor({ timeout: 5000 });

  for (const status of ['en_route', 'on_scene', 'cleared']) {
    step(`reporting ${status}`);
    const button = page.locator(`#st-${status}`);
    if (status !== 'cleared') {
      await button.tap();
      await page.locator(`#st-${status}.current`).waitFor({ timeout: 10000 });
      await page.locator('#conn[data-pending="0"]').waitFor({ timeout: 15000 });
    } else {
      await button.tap();
      await page.locator('#idle').waitFor({ state: 'visible', timeout: 10000 });
      await page.locator('#conn[data-pending="0"]').waitFor({ timeout: 15000 });
    }
  }
  await shot(page, '3-cleared');

  step('sending a text');
  await page.locator('#text-input').fill('Scene cleared, returning to patrol');
  await page.locator('#text-send').tap();
  await page.locator('#messages li.out').filter({ hasText: 'returning to patrol' }).waitFor({ timeout: 10000 });

  step('emergency: a short press sends nothing, a 2 s hold sends it');
  const emergency = page.locator('#emergency');
  await emergency.scrollIntoViewIfNeeded();
  const box = await emergency.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.waitForTimeout(500);
  await page.mouse.up();
  await page.waitForTimeout(2500);
  const early = await page.locator('#emergency-state').textContent();
  if (early) throw new Error(`a short press did something: ${early}`);
  await page.mouse.down();
  await page.waitForTimeout(2300);
  await page.mouse.up();
  await page.locator('#emergency-state').filter({ hasText: 'EMERGENCY SENT' }).waitFor({ timeout: 5000 });
  await page.locator('#conn[data-pending="0"]').waitFor({ timeout: 15000 });
  await shot(page, '3b-emergency');

  step('Korean and the night theme');
  await page.locator('#lang').tap();
  await page.locator('#st-on_scene').filter({ hasText: '현장 도착' }).waitFor({ timeout: 5000 });
  await page.locator('#theme').tap();
  const night = await page.evaluate(() => document.body.className);
  if (night !== 'night') throw new Error(`theme is ${night}`);
  await shot(page, '4-night-ko');
  // No further sound once the alert was confirmed.
  const beepsEnd = await page.evaluate(() => window.__beeps);
  if (beepsEnd !== beepsAfter) throw new Error(`sound went on after confirming: ${beepsAfter} → ${beepsEnd}`);

  step('another page frames the UI and calls its API');
  const page0 = new URL(url);
  page0.hash = '';
  const framer = await context.newPage();
  await framer.setContent(`<iframe src="${page0.href}" width="800" height="600"></iframe>`);
  await framer.waitForTimeout(1500);
  const inner = framer.frames().find((f) => f !== framer.mainFrame());
  const framed = inner ? await inner.evaluate(() => !!document.getElementById('accept')).catch(() => false) : false;
  if (framed) throw new Error('the UI rendered inside another page\'s frame');
  // The same origin without the key: refused (the page's key is in sessionStorage of its tab only).
  const unkeyed = await context.newPage();
  await unkeyed.goto(page0.href);
  const status = await unkeyed.evaluate(async () => (await fetch('/api/state')).status);
  if (status !== 401) throw new Error(`/api/state without the key answered ${status}`);
  // (In Korean: the first page chose it for this browser.)
  await unkeyed.locator('#conn').filter({ hasText: /field-client/ }).waitFor({ timeout: 5000 });
  console.log('ok');
} finally {
  await browser.close();
}
