// Browser test of the dispatcher console, driving Debian's chromium headless: log in, switch
// language, create an incident by address (keyboard only), dispatch the recommended unit,
// watch a simulated field client acknowledge it live, add to the narrative, take a second call
// at the same address as another caller of the same incident, open the timeline as the incident's
// report (replay controls, printed to PDF), broadcast, and read the supervisor's figures at 1366
// and 1920 px. Screenshots and the PDF go to $CONSOLE_ARTIFACTS (default tests/artifacts/console).
//
// Env: see console_harness.mjs; CONSOLE_ADDRESS, CONSOLE_UNIT.

import { execFileSync } from 'node:child_process';
import { join as joinPath } from 'node:path';
import { need, runConsole } from './console_harness.mjs';

/** The text of a PDF file, read by pypdf (installed by `make test`). */
const pdfText = (path) =>
  execFileSync('python3', ['-c', 'import sys, pypdf; print("\\n".join(p.extract_text() for p in pypdf.PdfReader(sys.argv[1]).pages))', path], {
    encoding: 'utf8',
  });

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

    step('the map opens on the fleet and greys what has no map data');
    await page.waitForFunction(() => document.getElementById('map').maplibreMap.getLayer('no-map-data'));
    const opening = await page.evaluate(async (callSign) => {
      const map = document.getElementById('map').maplibreMap;
      const [w, s, e, n] = (await (await fetch('/api/map/info')).json()).bounds;
      const b = map.getBounds();
      const across = Math.max(0, Math.min(e, b.getEast()) - Math.max(w, b.getWest()));
      const up = Math.max(0, Math.min(n, b.getNorth()) - Math.max(s, b.getSouth()));
      const units = await (await fetch('/api/units')).json();
      const unit = units.find((u) => u.call_sign === callSign);
      return {
        withData: (across * up) / ((b.getEast() - b.getWest()) * (b.getNorth() - b.getSouth())),
        unitInView: b.contains([unit.position.lon, unit.position.lat]),
      };
    }, unit);
    if (!opening.unitInView) throw new Error('the opening view leaves out the unit');
    if (opening.withData < 0.5) throw new Error(`only ${Math.round(opening.withData * 100)} % of the opening view has map data`);
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

    await page.waitForSelector(`.incident-marker[data-incident="${incidentId}"][data-kind=burglary] svg[data-shape=house]`);

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

    step('units above incident pins; trails off until a unit is clicked, with its route');
    const [unitZ, incidentZ] = await page.evaluate(() =>
      ['.unit-marker', '.incident-marker'].map((c) => Number(getComputedStyle(document.querySelector(c)).zIndex)),
    );
    if (!(unitZ > incidentZ)) throw new Error(`unit markers at z ${unitZ}, incident pins at ${incidentZ}`);
    const marker = page.locator('.unit-marker[data-unit]', { hasText: unit }).first();
    if ((await page.locator('.unit-marker.trail-on').count()) !== 0) throw new Error('a trail is on before any click');
    await marker.click();
    await page.waitForSelector('.unit-marker.trail-on');
    // The unit holds the order: its road route to the incident is drawn.
    await page.waitForFunction(
      () => document.getElementById('map').maplibreMap.queryRenderedFeatures({ layers: ['routes'] }).length > 0,
    );
    await shot('05b-route');
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
    await shot('07-timeline');

    step('replay on its own map: scrub, play, pause, speed, clock');
    await page.waitForSelector('[data-testid=replay-map] canvas');
    if (await page.locator('#map').isVisible()) throw new Error('the replay is drawn over the live map');
    await page.locator('.replay-marker', { hasText: unit }).first().waitFor();
    await page.locator('[data-testid=replay-scrub]').fill('0');
    const atStart = await page.textContent('[data-testid=replay-clock]');
    if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\+0:00\)$/.test(atStart ?? '')) throw new Error(`replay clock at the start: ${atStart}`);
    // At the start nothing after the call has happened yet.
    if (!(await page.locator('[data-testid=timeline] tr[data-kind=order_queued]').evaluate((r) => r.classList.contains('future')))) {
      throw new Error('the order is shown as sent before the replay reached it');
    }
    // Real time (down from the default 16×): the incident's quarter of a minute then lasts
    // long enough that the pause below cannot come after the replay has reached its end (a
    // click on Play there starts it again from the beginning), however busy the machine.
    await page.selectOption('[data-testid=replay-speed]', '1');
    await page.click('[data-testid=replay-play]');
    await page.waitForFunction((start) => document.querySelector('[data-testid=replay-clock]')?.textContent !== start, atStart);
    await page.click('[data-testid=replay-play]'); // pause
    const paused = await page.textContent('[data-testid=replay-clock]');
    await page.waitForTimeout(300);
    if ((await page.textContent('[data-testid=replay-clock]')) !== paused) throw new Error('the replay ran on after pause');
    await page.locator('[data-testid=replay-scrub]').fill('1000');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=timeline] tr.future').length === 0);

    step('the printable after-action report');
    await page.waitForFunction(() => document.querySelector('[data-testid=report-map]')?.getAttribute('src')?.startsWith('data:image/png'));
    await page.emulateMedia({ media: 'print' });
    await shot('07b-report-print');
    const pdf = joinPath(artifacts, 'report.pdf');
    await page.pdf({ path: pdf, format: 'A4', printBackground: true });
    await page.emulateMedia({ media: 'screen' });
    const text = pdfText(pdf);
    for (const expected of [`#${incidentId}`, 'incident created', 'order sent', 'narrative added', 'Test caller', unit, user]) {
      if (!text.includes(expected)) throw new Error(`the printed report lacks ${JSON.stringify(expected)}: ${text.slice(0, 400)}`);
    }

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
    // Search finds the incident by the unit sent to it and by its caller, and nothing else.
    const row = `[data-testid=supervisor] tr[data-incident="${incidentId}"]`;
    for (const words of [unit, 'test caller']) {
      await page.fill('[data-testid=incident-search]', words);
      await page.waitForSelector(row);
    }
    await page.fill('[data-testid=incident-search]', 'no such words anywhere');
    await page.waitForSelector(row, { state: 'detached' });
    await page.fill('[data-testid=incident-search]', '');
    await page.waitForSelector(row);
    const period = await page.textContent('[data-testid=stats-period]');
    if (!/^\d{4}-\d\d-\d\d .+ – \d{4}-\d\d-\d\d /.test(period ?? '')) throw new Error(`figures' period: ${period}`);
    const figure = await page.textContent('[data-testid=stats] tr:nth-child(2) td:nth-child(3)');
    if (!/^(\d+:\d\d(:\d\d)?|—) \/ (\d+:\d\d(:\d\d)?|—)/.test(figure ?? '')) throw new Error(`response time reads ${figure}`);
    for (const width of [1366, 1920]) {
      await page.setViewportSize({ width, height: 860 });
      const cut = await page.evaluate(() =>
        ['aside.panel', '[data-testid=stats]'].filter((q) => {
          const el = document.querySelector(q);
          return el.scrollWidth > el.clientWidth + 1;
        }),
      );
      if (cut.length) throw new Error(`at ${width} px these are cut off: ${cut}`);
    }
    await page.setViewportSize({ width: 1400, height: 860 });
    const csv = await page.getAttribute('[data-testid=export-csv]', 'href');
    if (!csv?.startsWith('/api/export/incidents?format=csv')) throw new Error(`export link ${csv}`);
    await shot('09-supervisor');
    return `incident ${incidentId} dispatched to ${unit}; screenshots in ${artifacts}`;
  },
);
