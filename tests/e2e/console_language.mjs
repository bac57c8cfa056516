// Browser test of the console's language and fonts: it speaks the browser's language (Korean for
// ko-KR, English for en-US) until the user switches, then keeps the user's choice; Korean text
// is drawn with the Korean face the console ships (loaded from our own server, so it renders on
// a machine without CJK fonts, as this one is). Screenshots go to $CONSOLE_ARTIFACTS (default
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
  async ({ page, base, shot, step, openPage, artifacts }) => {
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
    return `ko-KR -> ${koTitle}, en-US -> ${enTitle}, chosen Korean kept; faces ${faces.join(', ')}`;
  },
);
