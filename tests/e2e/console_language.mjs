// Browser test of the console's language and fonts: it speaks the browser's language (Korean for
// ko-KR, English for en-US) until the user switches, then keeps the user's choice; Korean text
// is drawn with the Korean face the console ships (loaded from our own server, so it renders on
// a machine without CJK fonts, as this one is); the map draws street and place names with glyphs
// from our own server. Screenshots go to $CONSOLE_ARTIFACTS (default
// tests/artifacts/console-language).
//
// Env: see console_harness.mjs.

import { join } from 'node:path';

import { runConsole } from './console_harness.mjs';

const KOREAN_TITLE = '112 지령 콘솔';
const ENGLISH_TITLE = 'Dispatch console';

/** The login page's title and the document's language, once the page has drawn. */
async function titleAndLang(page, base) {
  await page.goto(`${base}/`);
  await page.waitForSelector('form.login h1');
  return page.evaluate(() => [document.querySelector('form.login h1').textContent, document.documentElement.lang]);
}

await runConsole(
  { label: 'language', artifactsName: 'console-language', english: false, locale: 'ko-KR' },
  async ({ page, base, shot, step, login, openPage, artifacts }) => {
    step('a Korean browser gets Korean');
    const fontRequests = [];
    page.on('response', (r) => {
      if (/\.(otf|ttf|woff2?)$/.test(new URL(r.url()).pathname)) fontRequests.push([r.url(), r.status()]);
    });
    const [koTitle, koLang] = await titleAndLang(page, base);
    if (koTitle !== KOREAN_TITLE || koLang !== 'ko') throw new Error(`ko-KR browser got ${koTitle} (${koLang})`);

    step('Korean is drawn with the shipped Korean face');
    await page.evaluate(() => document.fonts.ready);
    const faces = await page.evaluate(() =>
      [...document.fonts].map((f) => `${f.family.replaceAll('"', '')}:${f.status}`),
    );
    if (!faces.includes('Dispatch Sans KR:loaded')) throw new Error(`font faces: ${faces.join(', ')}`);
    const korean = fontRequests.find(([url]) => /NotoSansKR/.test(url));
    if (!korean || korean[1] !== 200 || !korean[0].startsWith(base)) {
      throw new Error(`the Korean font was not loaded from our server: ${JSON.stringify(fontRequests)}`);
    }
    const family = await page.evaluate(() => getComputedStyle(document.querySelector('form.login h1')).fontFamily);
    if (!family.startsWith('"Dispatch Sans", "Dispatch Sans KR"')) throw new Error(`the title is set in ${family}`);
    await shot('01-korean-login');

    step('an English browser gets English');
    const english = await openPage('en-US');
    const [enTitle, enLang] = await titleAndLang(english, base);
    if (enTitle !== ENGLISH_TITLE || enLang !== 'en') throw new Error(`en-US browser got ${enTitle} (${enLang})`);
    await english.screenshot({ path: join(artifacts, '02-english-login.png') });

    step("the user's choice outlasts the browser's language");
    await english.click('[data-testid=lang]');
    await english.waitForFunction((ko) => document.querySelector('form.login h1')?.textContent === ko, KOREAN_TITLE);
    const [again, againLang] = await titleAndLang(english, base);
    if (again !== KOREAN_TITLE || againLang !== 'ko') throw new Error(`after choosing Korean and reloading: ${again} (${againLang})`);

    step('the map names its streets with our own glyphs');
    // Listening from before the map loads: its first labels fetch the ranges the names use.
    const glyphRequests = [];
    page.on('response', (r) => {
      if (r.url().includes('/api/map/fonts/')) glyphRequests.push([r.url(), r.status()]);
    });
    await login();
    const names = await page.evaluate(async () => {
      const map = document.querySelector('.maplibregl-map').maplibreMap;
      map.jumpTo({ center: [24.9384, 60.1699], zoom: 16.5 });
      await new Promise((done) => map.once('idle', done));
      const rendered = map.queryRenderedFeatures({ layers: ['names-major', 'names-minor', 'places', 'pois'] });
      return [...new Set(rendered.map((f) => f.properties.name))];
    });
    if (names.length < 3) throw new Error(`street and place names rendered: ${JSON.stringify(names)}`);
    if (!glyphRequests.some(([url, status]) => url.startsWith(base) && status === 200)) {
      throw new Error(`no glyph range loaded from our server: ${JSON.stringify(glyphRequests)}`);
    }
    await shot('03-street-names');
    // Text on the map (legend, markers) keeps the shipped faces, not MapLibre's Helvetica.
    const legendFont = await page.evaluate(() => getComputedStyle(document.querySelector('[data-testid=legend]')).fontFamily);
    if (!legendFont.startsWith('"Dispatch Sans"')) throw new Error(`the map legend is set in ${legendFont}`);
    await page.locator('[data-testid=legend]').screenshot({ path: join(artifacts, '04-legend.png') });
    return `ko-KR -> ${koTitle}, en-US -> ${enTitle}, chosen Korean kept; faces ${faces.join(', ')}; ${names.length} names drawn, e.g. ${names.slice(0, 3).join(', ')}`;
  },
);
