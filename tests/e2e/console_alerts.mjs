// Browser test of escalations on the dispatcher console: an order that no tablet receives
// escalates; the console must show it as a banner with a tone (WebAudio) until an operator
// acknowledges it. Screenshots go to $CONSOLE_ARTIFACTS (default tests/artifacts/console-alerts).
//
// Env: see console_harness.mjs; CONSOLE_UNIT (the unit whose order escalates).

import { need, runConsole } from './console_harness.mjs';

const unit = need('CONSOLE_UNIT');

await runConsole({ label: 'console alerts', artifactsName: 'console-alerts' }, async ({ page, shot, step, login }) => {
  await login();

  step('see the escalation banner and hear the tone');
  const row = page.locator('[data-testid=alerts] .alert-row', { hasText: unit });
  await row.first().waitFor({ timeout: 60_000 });
  await page.waitForSelector('[data-testid=alerts][data-alarm=on]');
  await page.waitForFunction(() => window.__tones > 0);
  const text = await row.first().textContent();
  if (!/not received|not acknowledged/.test(text ?? '')) throw new Error(`banner does not say why: ${text}`);
  await shot('01-escalation');

  step('acknowledge it');
  await row.first().locator('button.ack').click();
  await page.waitForSelector('[data-testid=alerts] .alert-row', { state: 'detached' });
  await page.waitForSelector('[data-testid=alerts][data-alarm=off]', { state: 'attached' });
  const tones = await page.evaluate(() => window.__tones);
  await page.waitForTimeout(3000);
  if ((await page.evaluate(() => window.__tones)) !== tones) throw new Error('the tone goes on after acknowledging');
  await shot('02-acknowledged');

  step('after a reload the alert stays acknowledged');
  await page.reload();
  await page.waitForSelector('.conn.online');
  await page.waitForTimeout(500);
  if (await page.locator('[data-testid=alerts] .alert-row', { hasText: unit }).count()) {
    throw new Error('the acknowledged alert came back after a reload');
  }
  return `escalation of ${unit} shown, sounded and acknowledged`;
});
