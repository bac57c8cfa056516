// The second factor in the browser: a supervisor whose role needs one logs in with the
// password, gets only the setup screen, scans (here: reads) the key, confirms with the
// authenticator's code, sees the recovery codes, reaches the console; logs out; logs in again
// and is asked for the code, which lets them in. The codes are computed here as an
// authenticator app does (RFC 6238: HMAC-SHA1 over the 30 s step, 6 digits).

import { createHmac } from 'node:crypto';
import { runConsole } from './console_harness.mjs';

/** RFC 4648 base32 (no padding) to bytes. */
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** The code for `key` at `offsetSecs` from now. */
function totp(key, offsetSecs) {
  const step = Math.floor((Date.now() / 1000 + offsetSecs) / 30);
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(key)).update(counter).digest();
  const at = mac[mac.length - 1] & 15;
  return String((mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

await runConsole({ label: 'second factor', artifactsName: 'console-second-factor' }, async ({ page, base, user, password, step, shot }) => {
  const logIn = async () => {
    await page.goto(`${base}/`);
    await page.fill('#login-username', user);
    await page.fill('#login-password', password);
    await page.click('[data-testid=login]');
  };
  step('the password alone leads to the setup only');
  await logIn();
  await page.click('[data-testid=start-second-factor]');
  const key = (await page.textContent('[data-testid=second-factor-secret]')).trim();
  await page.waitForSelector('.second-factor img.qr');
  await shot('second-factor-setup');
  step('confirm with the first code');
  await page.fill('#second-factor-code', totp(key, 0));
  await page.click('[data-testid=confirm-second-factor]');
  await page.waitForSelector('[data-testid=recovery-codes] li');
  const codes = await page.locator('[data-testid=recovery-codes] li').count();
  if (codes !== 10) throw new Error(`expected 10 recovery codes, saw ${codes}`);
  await shot('recovery-codes');
  await page.click('[data-testid=second-factor-done]');
  await page.waitForSelector('.conn.online');
  step('log out and in again: the code is asked for');
  await page.click('text=Log out');
  await page.waitForSelector('#login-username');
  await logIn();
  await page.waitForSelector('#login-code', { state: 'visible' });
  await page.fill('#login-code', totp(key, 30));
  await page.click('[data-testid=login]');
  await page.waitForSelector('.conn.online');
  await shot('logged-in-with-code');
  return `enrolled with ${codes} recovery codes; logged in with the code`;
});
