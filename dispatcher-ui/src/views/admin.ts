//! Admin: operator accounts (create, disable and enable, unlock, reset the password, change the
//! role), everybody's sessions (end any), units (with one-time enrolment codes), devices (revoke)
//! and premise information (`premises.ts`).

import { create, describe, get, post } from '../api';
import { h, replace, say } from '../dom';
import { code, t } from '../i18n';
import { clock } from '../format';
import type { Unit } from '../types';
import { PremisesAdmin } from './premises';
import { SessionTable } from './account';

interface Account {
  id: number;
  username: string;
  role: string;
  created_at_ms: number;
  disabled_at_ms: number | null;
  locked_until_ms: number | null;
  must_change_password: boolean;
  second_factor: boolean;
  sessions: number;
}

interface BackupStatus {
  schedule: { dir: string; every_secs: number; keep: number } | null;
  last: { at_ms: number; ok: boolean; dir: string | null; error: string | null } | null;
}

/** `locked_until_ms` of a lock only an admin lifts. */
const LOCKED_FOR_GOOD = 9223372036854775807;

const ROLES = ['operator', 'supervisor', 'admin'];
interface Device {
  id: number;
  unit_id: number;
  call_sign: string;
  name: string | null;
  enrolled_at_ms: number;
  last_seen_ms: number | null;
  revoked_at_ms: number | null;
}

export class AdminView {
  el = h('section', { class: 'admin-view', 'data-testid': 'admin' });
  private users = h('table', {});
  private units = h('table', {});
  private devices = h('table', {});
  private status = h('div', { class: 'form-status', role: 'status' });
  private premises = new PremisesAdmin();
  private sessions = new SessionTable('/api/sessions?all=true', true, this.status);
  private backups = h('p', { 'data-testid': 'backups' });

  constructor() {
    const username = h('input', { placeholder: t('username') });
    const password = h('input', { type: 'password', placeholder: t('password'), autocomplete: 'new-password' });
    const role = h('select', {}, ROLES.map((r) => h('option', { value: r }, code(r))));
    const callSign = h('input', { placeholder: t('call_sign') });
    const caps = h('input', { placeholder: `${t('capabilities')} (patrol, k9…)` });
    const station = h('input', { placeholder: t('station') });
    replace(
      this.el,
      this.status,
      h('h2', {}, t('users')),
      this.users,
      h(
        'form',
        {
          class: 'row',
          onsubmit: (e: Event) => {
            e.preventDefault();
            const body = { username: username.value.trim(), password: password.value, role: role.value };
            password.value = '';
            void this.run(async () => {
              await create('/api/users', body);
              username.value = '';
            });
          },
        },
        username,
        password,
        role,
        h('button', { type: 'submit' }, t('add_user')),
      ),
      h('h2', {}, t('all_sessions')),
      this.sessions.el,
      h('h2', {}, t('backups')),
      this.backups,
      h('h2', {}, t('units')),
      this.units,
      h(
        'form',
        {
          class: 'row',
          onsubmit: (e: Event) => {
            e.preventDefault();
            void this.run(() =>
              create('/api/units', {
                call_sign: callSign.value.trim(),
                kind: 'patrol_car',
                capabilities: caps.value.split(',').map((c) => c.trim()).filter(Boolean),
                home_station: station.value.trim() || undefined,
              }),
            );
          },
        },
        callSign,
        caps,
        station,
        h('button', { type: 'submit' }, t('add_unit')),
      ),
      h('h2', {}, t('devices')),
      this.devices,
      this.premises.el,
    );
  }

  private async run(action: () => Promise<unknown>): Promise<void> {
    try {
      this.oneTimePassword = null;
      await action();
      if (this.oneTimePassword) say(this.status, `${t('temporary_password')}: ${this.oneTimePassword}`, false);
      else say(this.status, t('saved'), false);
    } catch (e) {
      say(this.status, `${t('error')}: ${describe(e)}`, true);
    }
    await this.load();
  }

  /** One account: its role (changeable), its state, its sessions, and what an admin can do. */
  private userRow(u: Account): HTMLElement {
    const now = Date.now();
    const locked = u.locked_until_ms !== null && u.locked_until_ms > now;
    const state = u.disabled_at_ms
      ? t('disabled')
      : locked
        ? u.locked_until_ms === LOCKED_FOR_GOOD
          ? t('locked_until_unlocked')
          : `${t('locked')} → ${clock(u.locked_until_ms as number)}`
        : t('enabled');
    const roleSelect = h(
      'select',
      {
        'data-testid': `role-${u.username}`,
        onchange: () => {
          if (confirm(t('confirm_role'))) void this.run(() => post(`/api/users/${u.id}/role`, { role: roleSelect.value }));
          else roleSelect.value = u.role;
        },
      },
      ROLES.map((r) => h('option', { value: r, selected: r === u.role }, code(r))),
    );
    const act = (label: string, testid: string, action: () => Promise<unknown>, ask?: string) =>
      h(
        'button',
        {
          class: 'small',
          'data-testid': `${testid}-${u.username}`,
          onclick: () => {
            if (!ask || confirm(ask)) void this.run(action);
          },
        },
        label,
      );
    const reset = async () => {
      const r = await post<{ temporary_password: string }>(`/api/users/${u.id}/reset-password`);
      this.oneTimePassword = `${u.username}: ${r.temporary_password}`;
    };
    return h(
      'tr',
      { 'data-user': u.username },
      h('td', {}, u.username),
      h('td', {}, roleSelect),
      h('td', { 'data-testid': `state-${u.username}` }, state, u.must_change_password ? ` · ${t('must_change')}` : ''),
      h('td', {}, u.second_factor ? '✓' : '—'),
      h('td', {}, String(u.sessions)),
      h(
        'td',
        {},
        u.disabled_at_ms
          ? act(t('enable'), 'enable', () => post(`/api/users/${u.id}/enable`))
          : act(t('disable'), 'disable', () => post(`/api/users/${u.id}/disable`), t('confirm_disable')),
        locked ? act(t('unlock'), 'unlock', () => post(`/api/users/${u.id}/unlock`)) : null,
        act(t('reset_password'), 'reset', reset, t('confirm_reset')),
        u.second_factor
          ? act(t('reset_second_factor'), 'reset-second-factor', () => post(`/api/users/${u.id}/second-factor/reset`), t('confirm_reset_second_factor'))
          : null,
      ),
    );
  }

  /** The one-time password of the last reset, shown once above the table. */
  private oneTimePassword: string | null = null;

  /** The scheduled backups: where, how often, and how the last one went. */
  private async loadBackups(): Promise<void> {
    try {
      const b = await get<BackupStatus>('/api/admin/backups');
      if (!b.schedule) {
        replace(this.backups, t('backups_off'));
        return;
      }
      const every = `${b.schedule.dir} · ${Math.round(b.schedule.every_secs / 60)} min · ${t('backups_keep')} ${b.schedule.keep}`;
      const last = !b.last
        ? t('backups_none_yet')
        : b.last.ok
          ? `✓ ${clock(b.last.at_ms)} ${b.last.dir ?? ''}`
          : `✗ ${clock(b.last.at_ms)} ${b.last.error ?? ''}`;
      replace(this.backups, every, h('br', {}), h('span', { class: b.last && !b.last.ok ? 'error' : '' }, `${t('backups_last')}: ${last}`));
    } catch (e) {
      replace(this.backups, describe(e));
    }
  }

  async load(): Promise<void> {
    void this.premises.load();
    void this.sessions.load();
    void this.loadBackups();
    try {
      const [users, units, devices] = await Promise.all([
        get<Account[]>('/api/users'),
        get<Unit[]>('/api/units'),
        get<Device[]>('/api/devices'),
      ]);
      replace(
        this.users,
        h('tr', {}, [t('username'), t('change_role'), t('state'), t('second_factor'), t('sessions'), ''].map((c) => h('th', {}, c))),
        users.map((u) => this.userRow(u)),
      );
      replace(
        this.units,
        h('tr', {}, [t('call_sign'), t('status'), t('capabilities'), t('enrolment_code')].map((c) => h('th', {}, c))),
        units.map((u) => {
          const codeCell = h('td', {});
          codeCell.append(
            h(
              'button',
              {
                class: 'small',
                onclick: async () => {
                  try {
                    const r = await create<{ code: string; expires_at_ms: number }>(`/api/units/${u.id}/enrolment-code`);
                    replace(codeCell, h('code', { class: 'enrol-code' }, r.code), ` → ${clock(r.expires_at_ms)}`);
                  } catch (e) {
                    replace(codeCell, describe(e));
                  }
                },
              },
              t('issue_code'),
            ),
          );
          return h('tr', {}, h('td', {}, u.call_sign), h('td', {}, code(u.status)), h('td', {}, u.capabilities.join(', ')), codeCell);
        }),
      );
      replace(
        this.devices,
        h('tr', {}, ['#', t('call_sign'), t('enrolled'), t('last_seen'), t('status'), ''].map((c) => h('th', {}, c))),
        devices.map((d) =>
          h(
            'tr',
            { 'data-device': d.id },
            h('td', {}, String(d.id)),
            h('td', {}, d.call_sign, d.name ? ` (${d.name})` : ''),
            h('td', {}, clock(d.enrolled_at_ms)),
            h('td', {}, d.last_seen_ms ? clock(d.last_seen_ms) : '—'),
            h('td', {}, d.revoked_at_ms ? `${t('revoked')} ${clock(d.revoked_at_ms)}` : '✓'),
            h(
              'td',
              {},
              d.revoked_at_ms
                ? null
                : h(
                    'button',
                    {
                      class: 'small danger',
                      onclick: () => {
                        if (confirm(`${t('revoke')} ${d.call_sign} #${d.id}?`)) {
                          void this.run(() => post(`/api/devices/${d.id}/revoke`));
                        }
                      },
                    },
                    t('revoke'),
                  ),
            ),
          ),
        ),
      );
    } catch (e) {
      say(this.status, describe(e), true);
    }
  }
}
