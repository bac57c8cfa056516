//! Setting up the second factor: a new secret as a QR code (rendered by the server, nothing from
//! outside) and in base32 for typing in, confirmed with the first code from the authenticator
//! app; then the one-time recovery codes, shown once. Used from *My account* and as the screen
//! a role that needs a second factor sees until it has one.

import { describe, post } from '../api';
import { h, replace, say } from '../dom';
import { t } from '../i18n';

interface Enrolment {
  otpauth_uri: string;
  qr_svg: string;
  secret_base32: string;
}

/** The setup, from the first button to the recovery codes; `done` runs after "Continue". */
export function secondFactorSetup(done: () => void): HTMLElement {
  const el = h('div', { class: 'second-factor', 'data-testid': 'second-factor' });
  const status = h('div', { class: 'form-status', role: 'status' });
  const start = async () => {
    try {
      const e = await post<Enrolment>('/api/me/second-factor');
      showSecret(e);
    } catch (err) {
      say(status, describe(err), true);
    }
  };
  const showSecret = (e: Enrolment) => {
    const code = h('input', {
      id: 'second-factor-code',
      inputmode: 'numeric',
      autocomplete: 'one-time-code',
      maxlength: 6,
      required: true,
    });
    const qr = h('img', {
      class: 'qr',
      alt: e.otpauth_uri,
      src: `data:image/svg+xml;base64,${btoa(e.qr_svg)}`,
    });
    replace(
      el,
      h('p', {}, t('second_factor_scan')),
      qr,
      h('p', {}, t('second_factor_secret'), ' ', h('code', { 'data-testid': 'second-factor-secret' }, e.secret_base32)),
      h(
        'form',
        {
          class: 'row',
          onsubmit: async (ev: Event) => {
            ev.preventDefault();
            try {
              const r = await post<{ recovery_codes: string[] }>('/api/me/second-factor/confirm', { code: code.value });
              showRecoveryCodes(r.recovery_codes);
            } catch (err) {
              say(status, describe(err), true);
              code.select();
            }
          },
        },
        h('label', { for: 'second-factor-code' }, t('second_factor_code')),
        code,
        h('button', { type: 'submit', class: 'primary', 'data-testid': 'confirm-second-factor' }, t('confirm')),
      ),
      status,
    );
    code.focus();
  };
  const showRecoveryCodes = (codes: string[]) => {
    replace(
      el,
      h('p', { class: 'form-status' }, t('second_factor_enrolled')),
      h('p', {}, t('recovery_codes_hint')),
      h('ol', { class: 'recovery-codes', 'data-testid': 'recovery-codes' }, codes.map((c) => h('li', {}, h('code', {}, c)))),
      h('button', { class: 'primary', 'data-testid': 'second-factor-done', onclick: done }, t('continue')),
    );
  };
  replace(
    el,
    h('p', {}, t('second_factor_hint')),
    h('button', { class: 'primary', 'data-testid': 'start-second-factor', onclick: () => void start() }, t('set_up_second_factor')),
    status,
  );
  return el;
}
