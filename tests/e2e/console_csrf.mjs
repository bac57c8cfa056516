// Cross-site request forgery from a page on another port of the same host (same site, another
// origin): with the admin logged in to the console, a page served over HTTPS on another port
// fires the body-less state-changing requests an attacker would (issue an enrolment code, revoke
// a device, log out) with the browser's cookies, as fetches and as a submitted form. The server
// must refuse them all; the Rust test checks nothing was stored, this script that the console's
// session survived.
//
// Env as console_harness.mjs, plus ATTACK_CERT and ATTACK_KEY (PEM files for the attacker's
// HTTPS server) and ATTACK_UNIT (a unit id to ask an enrolment code for).

import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { need, runConsole } from './console_harness.mjs';

const target = need('CONSOLE_URL').replace(/\/$/, '');
const unit = need('ATTACK_UNIT');
const page = `<!doctype html><meta charset="utf-8"><title>attack</title>
<form id="f" method="POST" action="${target}/api/units/${unit}/enrolment-code" target="sink"></form>
<iframe name="sink"></iframe>
<script>
  const go = (path) => fetch('${target}' + path, { method: 'POST', mode: 'no-cors', credentials: 'include' }).catch(() => {});
  Promise.all([go('/api/units/${unit}/enrolment-code'), go('/api/devices/1/revoke'), go('/api/logout')])
    .then(() => { document.getElementById('f').submit(); setTimeout(() => { document.title = 'done'; }, 1500); });
</script>`;

const server = createServer(
  { cert: readFileSync(need('ATTACK_CERT')), key: readFileSync(need('ATTACK_KEY')) },
  (_, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page);
  },
);
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const attacker = `https://127.0.0.1:${server.address().port}`;

try {
  await runConsole({ label: 'csrf', artifactsName: 'console-csrf', extraOrigins: [attacker] }, async ({ page: console, login, step, shot }) => {
    await login();
    step('the attacker page fires its requests');
    const evil = await console.context().newPage();
    await evil.goto(`${attacker}/`);
    await evil.waitForFunction(() => document.title === 'done', null, { timeout: 20_000 });
    await evil.close();
    step('the console session survived');
    const status = await console.evaluate(async () => (await fetch('/api/me')).status);
    if (status !== 200) throw new Error(`the console's session was ended from another origin (${status})`);
    await console.reload();
    await console.waitForSelector('.conn.online');
    await shot('after-attack');
    return `attack from ${attacker} refused; session intact`;
  });
} finally {
  server.close();
}
