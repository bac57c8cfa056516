// Browser test of the tablet's offline indicator and queue (run by tests/tests/tablet_ui.rs,
// which kills and restarts the server when told on this script's stdout/stdin).
//
// usage: node tablet_offline.mjs UI_URL ARTIFACT_DIR
// Protocol with the test: prints `accepted` and waits for `offline` on stdin; prints `queued`
// and waits for `online`; prints `ok` at the end.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [url, artifacts] = process.argv.slice(2);
if (!url || !artifacts) {
  console.error('usage: node tablet_offline.mjs UI_URL ARTIFACT_DIR');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const shot = (page, name) => page.screenshot({ path: join(artifacts, `tablet-offline-${name}.png`) });
const step = (text) => console.error(`tablet_offline.mjs: ${text}`);
const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const expectLine = async (want) => {
  const { value } = await input.next();
  if (value !== want) throw new Error(`expected ${want} on stdin, got ${value}`);
};

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 }, hasTouch: true })).newPage();
  page.on('pageerror', (e) => { console.error(`page error: ${e.message}`); process.exitCode = 1; });
  await page.goto(url);
  await page.locator('#alert').waitFor({ state: 'visible', timeout: 20000 });
  await page.locator('#alert-ack').tap();
  await page.locator('#accept').tap();
  await page.locator('#order-state').filter({ hasText: /^Accepted(?! \()/ }).waitFor({ timeout: 15000 });
  await page.locator('#conn[data-online="yes"][data-pending="0"]').waitFor({ timeout: 15000 });
  console.log('accepted');
  await expectLine('offline');

  step('waiting for the offline indicator');
  await page.locator('#conn[data-online="no"]').waitFor({ timeout: 30000 });
  await page.locator('#st-en_route').tap();
  await page.locator('#st-on_scene').tap();
  await page.locator('#conn[data-pending="2"]').waitFor({ timeout: 10000 });
  const label = await page.locator('#conn').textContent();
  if (!label.includes('OFFLINE') || !label.includes('2 queued')) throw new Error(`indicator says ${label}`);
  await page.locator('#st-on_scene.current').waitFor();
  await shot(page, '1-offline');
  console.log('queued');
  await expectLine('online');

  step('waiting for the queue to drain');
  await page.locator('#conn[data-online="yes"][data-pending="0"]').waitFor({ timeout: 90000 });
  await shot(page, '2-back-online');
  console.log('ok');
} finally {
  await browser.close();
  // The open stdin would keep node alive.
  process.stdin.destroy();
}
