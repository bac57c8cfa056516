// Browser test of the dispatcher console, driving Debian's chromium headless: log in, switch
// language, create an incident by address (keyboard only), dispatch the recommended unit,
// watch a simulated field client acknowledge it live, add to the narrative, take a second call
// at the same address as another caller of the same incident, and open the timeline. Screenshots go to
// $CONSOLE_ARTIFACTS (default tests/artifacts/console).
//
// Env: see console_harness.mjs; CONSOLE_ADDRESS, CONSOLE_UNIT.

import { need, runConsole } from './console_harness.mjs';

const address = need('CONSOLE_ADDRESS');
const unit = need('CONSOLE_UNIT');

await runConsole(
  { label: 'console', artifactsName: 'console', english: false, locale: 'ko-KR' },
  async ({ page, base, user, password, shot, step, artifacts }) => {
    step('login page');
    await page.goto(`${base}/`);
    await page.waitForSelector('#login-username');
    // Korean first (the browser's language), then English for the rest of the run.
    const koTitle = await page.textContent('form.login h1');
    await page.click('[data-testid=lang]');
    await page.waitForFunction((ko) => document.querySelector('form.login h1')?.textContent !== ko, koTitle);
    const enTitle = await page.textContent('form.login h1');
    if (koTitle === enTitle) throw new Error('language switch changed nothing');
    if (enTitle !== 'Dispatch console') {
      // Started in English: switch twice to prove both ways work.
      throw new Error(`unexpected English title ${JSON.stringify(enTitle)} (Korean was ${JSON.stringify(koTitle)})`);
    }
    await shot('01-login');

    step('log in');
    await page.fill('#login-username', user);
    await page.fill('#login-password', 'wrong-password');
    await page.click('[data-testid=login]');
    await page.waitForSelector('form.login .form-status:not(:empty)');
    await page.fill('#login-password', password);
    await page.click('[data-testid=login]');
    await page.waitForSelector('.conn.online');
    await page.waitForSelector(`.unit-marker[data-unit]`);
    await shot('02-console');

    step('create an incident by address, keyboard only');
    await page.keyboard.press('Alt+n');
    await page.waitForFunction(() => document.activeElement?.id === 'intake-address');
    await page.keyboard.type(address, { delay: 15 });
    await page.waitForSelector('[data-testid=suggestions] li');
    await shot('03-autocomplete');
    await page.keyboard.press('Enter'); // takes the first suggestion, moves to the type
    await page.waitForFunction(() => document.activeElement?.id === 'intake-kind');
    await page.locator('[data-testid=intake-premises] li', { hasText: 'Alarm company has the keys' }).waitFor();
    const where = await page.textContent('[data-testid=intake-location]');
    if (!/\d+\.\d+, \d+\.\d+/.test(where ?? '')) throw new Error(`no location after choosing: ${where}`);
    await page.fill('#intake-kind', 'burglary');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement?.id === 'intake-priority');
    await page.selectOption('#intake-priority', '1');
    await page.fill('#intake-caller', 'Test caller');
    await page.click('[data-testid=create-incident]');
    await page.waitForSelector('[data-testid=incident-panel] header h2');
    const heading = await page.textContent('[data-testid=incident-panel] header h2');
    const incidentId = Number(/#(\d+)/.exec(heading ?? '')?.[1]);
    if (!incidentId) throw new Error(`no incident id in ${heading}`);

    step('see the recommendation');
    const proposed = page.locator('[data-testid=recommendations] tr.proposed td:first-child');
    await proposed.first().waitFor();
    const proposedText = (await proposed.first().textContent()) ?? '';
    if (!proposedText.includes(unit)) throw new Error(`recommended ${proposedText}, expected ${unit}`);
    await shot('04-recommendation');

    step('dispatch the plan with Alt+D, pressed twice');
    await page.keyboard.press('Alt+d');
    await page.keyboard.press('Alt+d');
    const order = page.locator('[data-testid=orders] .order', { hasText: unit });
    await order.first().waitFor();
    await page.waitForTimeout(500);
    const orders = await page.locator('[data-testid=orders] .order').count();
    if (orders !== 1) throw new Error(`Alt+D twice made ${orders} orders`);

    step('see the field client acknowledge it (live)');
    await page.waitForSelector(
      `[data-testid=orders] .order[data-state=acknowledged], [data-testid=orders] .order[data-state=accepted]`,
      { timeout: 60_000 },
    );
    const elapsed = await page.textContent('[data-testid=orders] .order .elapsed');
    if (!/^\d+:\d\d$/.test(elapsed ?? '')) throw new Error(`no elapsed time: ${elapsed}`);
    await shot('05-acknowledged');

    step('units above incident pins; trails off until a unit is clicked');
    const [unitZ, incidentZ] = await page.evaluate(() =>
      ['.unit-marker', '.incident-marker'].map((c) => Number(getComputedStyle(document.querySelector(c)).zIndex)),
    );
    if (!(unitZ > incidentZ)) throw new Error(`unit markers at z ${unitZ}, incident pins at ${incidentZ}`);
    const marker = page.locator('.unit-marker[data-unit]', { hasText: unit }).first();
    if ((await page.locator('.unit-marker.trail-on').count()) !== 0) throw new Error('a trail is on before any click');
    await marker.click();
    await page.waitForSelector('.unit-marker.trail-on');
    await marker.click();
    await page.waitForFunction(() => document.querySelectorAll('.unit-marker.trail-on').length === 0);

    step('add a line to the narrative');
    await page.fill('[data-testid=narrative-input]', 'Suspect seen leaving by the back door');
    await page.press('[data-testid=narrative-input]', 'Enter');
    await page.locator('[data-testid=narrative] li.entry-narrative', { hasText: 'back door' }).waitFor();

    step('a second call at the same address is offered as the same incident');
    await page.keyboard.press('Alt+n');
    await page.waitForFunction(() => document.activeElement?.id === 'intake-address');
    const emptied = await page.evaluate(() =>
      ['intake-address', 'intake-kind', 'intake-priority', 'intake-caller'].map((id) => document.getElementById(id).value),
    );
    if (emptied.some((v) => v !== '')) throw new Error(`the intake form kept the last call: ${emptied}`);
    await page.keyboard.type(address, { delay: 15 });
    await page.waitForSelector('[data-testid=suggestions] li');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement?.id === 'intake-kind');
    await page.fill('#intake-kind', 'burglary');
    await page.selectOption('#intake-priority', '2');
    await page.fill('#intake-caller', 'Second caller');
    await page.fill('#intake-callback', '010-1234-5678');
    await page.click('[data-testid=create-incident]');
    const join = page.locator(`[data-testid=duplicates] [data-testid=add-caller-${incidentId}]`);
    await join.waitFor();
    await shot('06-duplicate');
    await join.click();
    await page.locator('[data-testid=narrative] li.entry-caller', { hasText: '010-1234-5678' }).waitFor();
    const selected = await page.textContent('[data-testid=incident-panel] header h2');
    if (!selected?.includes(`#${incidentId}`)) throw new Error(`the panel shows ${selected}, not #${incidentId}`);

    step('open the timeline');
    await page.click('[data-testid=open-timeline]');
    await page.waitForSelector('[data-testid=timeline] tr[data-kind=incident_created]');
    await page.waitForSelector('[data-testid=timeline] tr[data-kind=order_queued]');
    await page.waitForSelector('[data-testid=timeline] tr[data-kind=narrative_added]');
    await page.waitForSelector('[data-testid=timeline] tr[data-kind=caller_added]');
    await page.waitForSelector(
      '[data-testid=timeline] tr[data-kind=order_accepted], [data-testid=timeline] tr[data-kind=order_acknowledged]',
    );
    const who = await page.textContent('[data-testid=timeline] tr[data-kind=incident_created] td:nth-child(3)');
    if (!who?.includes(user)) throw new Error(`timeline does not say who created it: ${who}`);
    // In words, with the date: the record outlives the shift.
    const [when, what] = await page.$$eval('[data-testid=timeline] tr[data-kind=order_queued] td', (tds) =>
      tds.slice(0, 2).map((td) => td.textContent ?? ''),
    );
    if (what !== 'order sent' || !/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/.test(when)) {
      throw new Error(`the timeline says ${JSON.stringify([when, what])}`);
    }
    await page.click('[data-testid=replay]');
    await page.locator('.replay-marker', { hasText: unit }).first().waitFor();
    await shot('07-timeline');

    step('broadcast to an area drawn on the map, with a live recipient count');
    await page.click('nav.tabs [data-tab=broadcast]');
    await page.click('[data-testid=draw-area]');
    const box = await page.locator(`.unit-marker[data-unit]`, { hasText: unit }).boundingBox();
    if (!box) throw new Error('the unit is not on the map');
    const cx = box.x + box.width / 2;
    const cy = box.y + box.height / 2;
    for (const [dx, dy] of [[-50, -50], [50, -50], [50, 50], [-50, 50]]) {
      await page.mouse.click(cx + dx, cy + dy);
    }
    await page.waitForFunction(
      (u) => document.querySelector('[data-testid=recipient-count]')?.textContent?.startsWith(`1 (${u})`),
      unit,
    );
    await page.click('[data-testid=draw-area]');
    await page.fill('#bc-headline', 'Road closed');
    await page.click('[data-testid=send-broadcast]');
    await page.waitForSelector('[data-testid=broadcast] form .form-status:not(:empty)');
    await shot('08-broadcast');

    step('supervisor figures');
    await page.click('nav.tabs [data-tab=supervisor]');
    await page.waitForSelector('[data-testid=stats] table');
    await page.waitForSelector(`[data-testid=supervisor] tr[data-incident="${incidentId}"]`);
    const period = await page.textContent('[data-testid=stats-period]');
    if (!/^\d{4}-\d\d-\d\d .+ – \d{4}-\d\d-\d\d /.test(period ?? '')) throw new Error(`figures' period: ${period}`);
    const figure = await page.textContent('[data-testid=stats] tr:nth-child(2) td:nth-child(3)');
    if (!/^(\d+:\d\d(:\d\d)?|—) \/ (\d+:\d\d(:\d\d)?|—)/.test(figure ?? '')) throw new Error(`response time reads ${figure}`);
    const csv = await page.getAttribute('[data-testid=export-csv]', 'href');
    if (!csv?.startsWith('/api/export/incidents?format=csv')) throw new Error(`export link ${csv}`);
    await shot('09-supervisor');
    return `incident ${incidentId} dispatched to ${unit}; screenshots in ${artifacts}`;
  },
);
