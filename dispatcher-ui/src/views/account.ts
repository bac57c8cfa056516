//! The operator's own account: change the password (also the screen a reset password forces
//! before anything else) and the list of their sessions, each of which they can end. Admins
//! see the same table for every account in `admin.ts` (`SessionTable`).

import { describe, get, post } from '../api';
import { h, replace, say } from '../dom';
import { t } from '../i18n';
import { clock } from '../format';
import { secondFactorSetup } from './second_factor';

export interface SessionInfo {
  id: number;
  user_id: number;
  username: string;
  created_at_ms: number;
  last_seen_at_ms: number;
  expires_at_ms: number;
  source: string | null;
  user_agent: string | null;
  current?: boolean;
}

/** A day and a time: sessions last longer than a day can show. */
function when(ms: number): string {
  return `${new Date(ms).toLocaleDateString()} ${clock(ms)}`;
}

/** Sessions with an End button each; `showUser` adds the account's name (admins). */
export class SessionTable {
  el = h('table', { class: 'sessions', 'data-testid': 'sessions' });

  constructor(
    private path: string,
    private showUser: boolean,
    private status: HTMLElement,
  ) {}

  async load(): Promise<void> {
    try {
      this.render(await get<SessionInfo[]>(this.path));
    } catch (e) {
      say(this.status, describe(e), true);
    }
  }

  private render(sessions: SessionInfo[]): void {
    const heads = [
      ...(this.showUser ? [t('username')] : []),
      t('session_started'),
      t('session_last_seen'),
      t('session_expires'),
      t('source'),
      '',
    ];
    replace(
      this.el,
      h('tr', {}, heads.map((c) => h('th', {}, c))),
      sessions.map((s) =>
        h(
          'tr',
          { 'data-session': s.id },
          this.showUser ? h('td', {}, s.username) : null,
          h('td', {}, when(s.created_at_ms)),
          h('td', {}, when(s.last_seen_at_ms)),
          h('td', {}, when(s.expires_at_ms)),
          h('td', { title: s.user_agent ?? '' }, s.source ?? '—'),
          h(
            'td',
            {},
            s.current
              ? t('this_session')
              : h(
                  'button',
                  {
                    class: 'small danger',
                    'data-testid': `end-session-${s.id}`,
                    onclick: async () => {
                      try {
                        await post(`/api/sessions/${s.id}/end`);
                        say(this.status, t('saved'), false);
                      } catch (e) {
                        say(this.status, describe(e), true);
                      }
                      await this.load();
                    },
                  },
                  t('end_session'),
                ),
          ),
        ),
      ),
    );
  }
}

/**
 * The password form. `done` runs after a change (the forced screen then starts the console);
 * the fields are emptied whatever the outcome.
 */
export function passwordForm(done: () => void): HTMLElement {
  const current = h('input', { type: 'password', id: 'current-password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', id: 'new-password', autocomplete: 'new-password', required: true });
  const again = h('input', { type: 'password', id: 'repeat-password', autocomplete: 'new-password', required: true });
  const status = h('div', { class: 'form-status', role: 'status' });
  return h(
    'form',
    {
      class: 'password-form',
      'data-testid': 'password-form',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        if (next.value !== again.value) {
          say(status, t('passwords_differ'), true);
          return;
        }
        try {
          await post('/api/password', { current_password: current.value, new_password: next.value });
          say(status, t('password_changed'), false);
          done();
        } catch (err) {
          say(status, `${t('error')}: ${describe(err)}`, true);
        } finally {
          for (const field of [current, next, again]) field.value = '';
        }
      },
    },
    h('h2', {}, t('change_password')),
    h('p', { class: 'hint' }, t('password_rules')),
    h('label', { for: 'current-password' }, t('current_password')),
    current,
    h('label', { for: 'new-password' }, t('new_password')),
    next,
    h('label', { for: 'repeat-password' }, t('repeat_password')),
    again,
    h('button', { type: 'submit', class: 'primary', 'data-testid': 'change-password' }, t('change_password')),
    status,
  );
}

export class AccountView {
  el = h('section', { class: 'account-view', 'data-testid': 'account' });
  private status = h('div', { class: 'form-status', role: 'status' });
  private sessions = new SessionTable('/api/sessions', false, this.status);
  private secondFactor = h('div', {});

  constructor() {
    replace(
      this.el,
      passwordForm(() => void this.sessions.load()),
      h('h2', {}, t('second_factor')),
      this.secondFactor,
      h('h2', {}, t('my_sessions')),
      this.status,
      this.sessions.el,
    );
  }

  async load(): Promise<void> {
    try {
      const me = await get<{ second_factor: boolean; recovery_codes_left: number | null }>('/api/me');
      if (me.second_factor) replace(this.secondFactor, `${t('second_factor_on')} ${me.recovery_codes_left ?? 0}`);
      else replace(this.secondFactor, secondFactorSetup(() => void this.load()));
    } catch (e) {
      say(this.status, describe(e), true);
    }
    await this.sessions.load();
  }
}
