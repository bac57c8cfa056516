// Browser test of an officer's emergency on the dispatcher console: the highest alert, first in
// the banner with a tone, the map taken to the officer and the emergency incident selected, until
// an operator acknowledges it. Screenshots go to $CONSOLE_ARTIFACTS (default
// tests/artifacts/console-emergency).
//
// Env: see console_harness.mjs; CONSOLE_UNIT (the officer's unit), CONSOLE_INCIDENT (the
// emergency incident the server opened).

import { need, runConsole } from './console_harness.mjs';

const unit = need('CONSOLE_UNIT');
const incident = need('CONSOLE_INCIDENT');

await runConsole({ label: 'console emergency', artifactsName: 'console-emergency' }, async ({ page, shot, step, login }) => {
  await login();

  step('the emergency is the first alert, with a tone');
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

  step('its incident is selected');
  await page.waitForFunction(
    (id) => (document.querySelector('[data-testid=incident-panel] header h2')?.textContent ?? '').includes(`#${id}`),
    incident,
    { timeout: 10_000 },
  );
  await shot('01-emergency');

  step('acknowledge it');
  await row.locator('button.ack').click();
  await page.waitForSelector('[data-testid=alerts] .alert-row[data-kind=officer_emergency]', { state: 'detached' });
  await shot('02-acknowledged');
  return `${unit} shown first, sounded, selected and acknowledged`;
});
