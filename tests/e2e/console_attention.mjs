// Browser test of the queue by attention: an incident that needs someone (here a P3 call past
// its dispatch target) comes first, above calls of higher priority that need nothing yet; its
// row says why and offers the action that answers it, and one click dispatches the nearest
// unit. Zoomed out, the three pins at one address show as one, the most urgent, with a count,
// and the two units up the street as one, the available one in front.
// Screenshots go to $CONSOLE_ARTIFACTS (default tests/artifacts/console-attention).
//
// Env: see console_harness.mjs; CONSOLE_UNIT (the unit to be dispatched), CONSOLE_OTHER_UNIT (an
// available unit farther up the street), CONSOLE_INCIDENT (the
// incident that needs attention), CONSOLE_OTHERS (ids of those that do not, comma-separated).

import { need, runConsole } from './console_harness.mjs';

const unit = need('CONSOLE_UNIT');
const otherUnit = need('CONSOLE_OTHER_UNIT');
const incident = need('CONSOLE_INCIDENT');
const others = need('CONSOLE_OTHERS').split(',');

await runConsole({ label: 'console attention', artifactsName: 'console-attention' }, async ({ page, shot, step, login }) => {
  await login();

  step('the incident that needs someone comes first');
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

  step('one click dispatches the nearest unit');
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

  step('below street level the three pins at one address show as the most urgent with a count');
  const pins = () =>
    page.evaluate(() =>
      [...document.querySelectorAll('.incident-marker[data-incident]')]
        .filter((el) => !el.hidden)
        .map((el) => ({ id: el.dataset.incident, priority: el.dataset.priority, cluster: el.dataset.cluster ?? null })),
    );
  await page.evaluate(() => document.getElementById('map').maplibreMap.jumpTo({ zoom: 13 }));
  await page.waitForFunction(() => document.querySelectorAll('.incident-marker[data-incident]:not([hidden])').length === 1);
  const clustered = await pins();
  if (clustered[0].priority !== '0' || clustered[0].cluster !== '3') throw new Error(`at zoom 13: ${JSON.stringify(clustered)}`);
  step('and the two units up the street as one, the available one in front');
  const shownUnits = () =>
    page.evaluate(() =>
      [...document.querySelectorAll('.unit-marker[data-unit]')]
        .filter((el) => !el.hidden)
        .map((el) => ({ text: el.textContent, cluster: el.dataset.cluster ?? null })),
    );
  await page.waitForFunction(() => document.querySelectorAll('.unit-marker[data-unit]:not([hidden])').length === 1);
  const units = await shownUnits();
  if (!units[0].text.startsWith(otherUnit) || units[0].cluster !== '2') throw new Error(`units at zoom 13: ${JSON.stringify(units)}`);
  await shot('03-clustered');
  await page.evaluate(() => document.getElementById('map').maplibreMap.jumpTo({ zoom: 16 }));
  await page.waitForFunction(() => document.querySelectorAll('.incident-marker[data-incident]:not([hidden])').length === 3);
  await page.waitForFunction(() => document.querySelectorAll('.unit-marker[data-unit]:not([hidden])').length === 2);
  return `#${incident} first, ${unit} dispatched in one click, pins and units decluttered below street level`;
});
