// The Admin screen in the browser: an admin adds an operator account (the form empties once
// saved), changes its role and disables it, after which that account cannot log in; adds a unit,
// edits it, issues its enrolment code (fingerprint and QR code), then disables it: the unit leaves
// the unit board until it is enabled again.
//
// Env: see console_harness.mjs; ADMIN_NEW_PASSWORD (the password given to the new account),
// SERVER_FINGERPRINT (the certificate fingerprint the enrolment must show).

import { need, runConsole } from './console_harness.mjs';

const newPassword = need('ADMIN_NEW_PASSWORD');
const serverFingerprint = need('SERVER_FINGERPRINT');

await runConsole({ label: 'admin', artifactsName: 'console-admin' }, async ({ page, base, login, step, shot, openPage }) => {
  // Every confirmation the screen asks for is answered yes.
  page.on('dialog', (d) => void d.accept());
  await login();
  const openAdmin = async () => {
    await page.click('nav.tabs [data-tab=admin]');
    await page.waitForSelector('[data-testid=admin] tr[data-user]');
  };
  await openAdmin();

  step('add an operator account; the form is emptied');
  await page.fill('[data-testid=new-username]', 'olli');
  await page.fill('[data-testid=new-password]', newPassword);
  await page.selectOption('[data-testid=new-role]', 'operator');
  await page.click('[data-testid=add-user]');
  await page.waitForSelector('tr[data-user=olli]');
  const left = await page.evaluate(() =>
    ['new-username', 'new-password'].map((id) => document.querySelector(`[data-testid=${id}]`).value),
  );
  if (left.some((v) => v !== '')) throw new Error(`the account form kept ${JSON.stringify(left)}`);

  step('change its role');
  await page.selectOption('[data-testid=role-olli]', 'supervisor');
  await page.waitForFunction(() => document.querySelector('[data-testid=role-olli]')?.value === 'supervisor');
  await page.reload();
  await page.waitForSelector('.conn.online');
  await openAdmin();
  const role = await page.inputValue('[data-testid=role-olli]');
  if (role !== 'supervisor') throw new Error(`the role is ${role} after a reload`);

  step('disable it: it can no longer log in');
  await page.click('[data-testid=disable-olli]');
  await page.locator('[data-testid=state-olli]', { hasText: 'disabled' }).waitFor();
  await page.waitForSelector('[data-testid=enable-olli]');
  await shot('user-disabled');
  const other = await openPage('en-US');
  await other.goto(`${base}/`);
  await other.fill('#login-username', 'olli');
  await other.fill('#login-password', newPassword);
  await other.click('[data-testid=login]');
  await other.waitForSelector('form.login .form-status:not(:empty)');
  if ((await other.locator('.conn').count()) !== 0) throw new Error('a disabled account reached the console');
  await other.close();

  step('add a unit and edit it');
  await page.fill('[data-testid=unit-call-sign]', 'P-71');
  await page.fill('[data-testid=unit-capabilities]', 'patrol');
  await page.click('[data-testid=save-unit]');
  await page.waitForSelector('tr[data-unit-row=P-71]');
  await page.click('[data-testid=edit-unit-P-71]');
  await page.fill('[data-testid=unit-station]', 'Pasila');
  await page.click('[data-testid=save-unit]');
  await page.locator('tr[data-unit-row=P-71]', { hasText: 'Pasila' }).waitFor();
  if ((await page.inputValue('[data-testid=unit-call-sign]')) !== '') throw new Error('the unit form kept the call sign');

  step('issue its enrolment code');
  await page.click('tr[data-unit-row=P-71] >> text=Issue code');
  await page.waitForSelector('tr[data-unit-row=P-71] [data-testid=fingerprint]');
  const fingerprint = await page.textContent('tr[data-unit-row=P-71] [data-testid=fingerprint]');
  if (fingerprint?.trim() !== serverFingerprint) throw new Error(`fingerprint ${fingerprint}, not ${serverFingerprint}`);
  await page.waitForSelector('tr[data-unit-row=P-71] [data-testid=enrol-qr]');

  step('the unit is on the board');
  const onBoard = async () => {
    await page.click('nav.tabs [data-tab=units]');
    await page.waitForSelector('[data-testid=unit-board] tr');
    return page.locator('[data-testid=unit-board] tr', { hasText: 'P-71' }).count();
  };
  if ((await onBoard()) !== 1) throw new Error('the new unit is not on the board');

  step('disable the unit: it leaves the board');
  await openAdmin();
  await page.click('[data-testid=disable-unit-P-71]');
  await page.locator('[data-testid=unit-state-P-71]', { hasText: 'disabled' }).waitFor();
  if ((await page.locator('tr[data-unit-row=P-71] [data-testid=fingerprint]').count()) !== 0) {
    throw new Error('a disabled unit still offers its enrolment');
  }
  await shot('unit-disabled');
  if ((await onBoard()) !== 0) throw new Error('a disabled unit is still on the board');

  step('enable it again: back on the board');
  await openAdmin();
  await page.click('[data-testid=enable-unit-P-71]');
  await page.waitForSelector('[data-testid=disable-unit-P-71]');
  if ((await onBoard()) !== 1) throw new Error('the enabled unit is not back on the board');
  return 'account added, edited, disabled; unit added, edited, disabled, enabled';
});
