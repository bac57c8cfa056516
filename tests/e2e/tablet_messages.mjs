// Browser test of the tablet's control-room traffic (run by tests/tests/tablet_ui.rs, which
// first sends the unit a text, a broadcast, and an order that it then cancels).
//
// usage: node tablet_messages.mjs UI_URL ARTIFACT_DIR
// Each arrives as a full-screen alert in turn (text, broadcast, withdrawal); the officer
// confirms each, sees them in the lists, and answers the control room. Prints `ok`.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [url, artifacts] = process.argv.slice(2);
if (!url || !artifacts) {
  console.error('usage: node tablet_messages.mjs UI_URL ARTIFACT_DIR');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `tablet-messages-${name}.png`), fullPage: true });
const step = (text) => console.error(`tablet_messages.mjs: ${text}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--autoplay-policy=no-user-gesture-required', '--no-sandbox'],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-GB', hasTouch: true })).newPage();
  page.on('pageerror', (e) => { console.error(`page error: ${e.message}`); process.exitCode = 1; });
  await page.goto(url);

  const expectAlert = async (kind, title, name) => {
    step(`waiting for the ${kind} alert`);
    await page.locator(`#alert.${kind}`).waitFor({ state: 'visible', timeout: 20000 });
    await page.locator('#alert-title').filter({ hasText: title }).waitFor({ timeout: 5000 });
    await shot(page, name);
    const id = await page.locator('#alert').getAttribute('data-message-id');
    await page.locator('#alert-ack').tap();
    // The next alert (or none) replaces this one.
    await page.waitForFunction((shown) => {
      const a = document.getElementById('alert');
      return a.hidden || a.dataset.messageId !== shown;
    }, id, { timeout: 10000 });
  };
  await expectAlert('text', 'Call the duty officer', '1-text');
  await expectAlert('broadcast', 'Stolen van ABC-123', '2-broadcast');
  await expectAlert('cancel', 'burglary', '3-withdrawn');
  await page.locator('#alert').waitFor({ state: 'hidden', timeout: 10000 });

  step('lists');
  await page.locator('#idle').waitFor({ state: 'visible' });
  await page.locator('#broadcasts li').filter({ hasText: 'Stolen van ABC-123' }).waitFor();
  await page.locator('#messages li.in').filter({ hasText: 'Call the duty officer' }).waitFor();
  await page.locator('#messages li.in').filter({ hasText: 'Cancelled by the control room' }).waitFor();

  step('answering');
  await page.locator('#text-input').fill('Calling now');
  await page.locator('#text-send').tap();
  await page.locator('#messages li.out').filter({ hasText: 'Calling now' }).filter({ hasText: 'sent' }).waitFor({ timeout: 15000 });
  await page.locator('#conn[data-pending="0"]').waitFor({ timeout: 15000 });
  await shot(page, '4-lists');
  console.log('ok');
} finally {
  await browser.close();
}
