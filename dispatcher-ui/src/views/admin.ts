//! Admin: operator accounts (create, disable and enable, unlock, reset the password, change the
//! role), everybody's sessions (end any), units (with one-time enrolment codes), devices (revoke)
//! and premise information (`premises.ts`).

import { create, describe, get, post, put } from '../api';
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
  schedule: { dir: string; every_secs: number; keep: number; max_rate_mib_s: number } | null;
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

/** A unit's one-time enrolment code as the server issues it. */
interface EnrolmentCode {
  code: string;
  expires_at_ms: number;
  /** The certificate's SHA-256, what `field-client enroll --pin` takes. */
  fingerprint: string;
  /** `dispatch-enrol://…`, when the server knows its public origin. */
  link: string | null;
  qr_svg: string | null;
}

/** What a tablet needs to enrol: the code and its expiry, the fingerprint to pin, and the link
 *  with its QR code (drawn by the server) to scan instead of typing. */
export function enrolmentBlock(r: EnrolmentCode): HTMLElement {
  return h(
    'div',
    { class: 'enrolment', 'data-testid': 'enrolment' },
    h('code', { class: 'enrol-code' }, r.code),
    ` → ${clock(r.expires_at_ms)}`,
    h('div', {}, `${t('fingerprint')}: `, h('code', { class: 'fingerprint', 'data-testid': 'fingerprint' }, r.fingerprint)),
    r.link ? h('div', {}, `${t('enrolment_link')}: `, h('code', { class: 'enrol-link', 'data-testid': 'enrol-link' }, r.link)) : null,
    r.qr_svg
      ? h('img', {
          class: 'qr',
          alt: t('enrolment_link'),
          'data-testid': 'enrol-qr',
          src: `data:image/svg+xml;base64,${btoa(r.qr_svg)}`,
        })
      : null,
  );
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
  private unitForm = new UnitForm((action) => this.run(action));

  constructor() {
    const username = h('input', { placeholder: t('username'), 'data-testid': 'new-username' });
    const password = h('input', { type: 'password', placeholder: t('password'), autocomplete: 'new-password', 'data-testid': 'new-password' });
    const role = h('select', { 'data-testid': 'new-role' }, ROLES.map((r) => h('option', { value: r }, code(r))));
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
        h('button', { type: 'submit', 'data-testid': 'add-user' }, t('add_user')),
      ),
      h('h2', {}, t('all_sessions')),
      this.sessions.el,
      h('h2', {}, t('backups')),
      this.backups,
      h('h2', {}, t('units')),
      this.units,
      this.unitForm.el,
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
      const every = `${b.schedule.dir} · ${Math.round(b.schedule.every_secs / 60)} min · ${t('backups_keep')} ${b.schedule.keep}${b.schedule.max_rate_mib_s > 0 ? ` · ≤ ${b.schedule.max_rate_mib_s} MiB/s` : ''}`;
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
    void this.unitForm.loadKinds();
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
        h('tr', {}, [t('call_sign'), t('unit_kind'), t('status'), t('capabilities'), t('station'), t('enrolment_code'), ''].map((c) => h('th', {}, c))),
        units.map((u) => {
          const codeCell = h('td', {});
          codeCell.append(
            h(
              'button',
              {
                class: 'small',
                onclick: async () => {
                  try {
                    const r = await create<EnrolmentCode>(`/api/units/${u.id}/enrolment-code`);
                    replace(codeCell, enrolmentBlock(r));
                  } catch (e) {
                    replace(codeCell, describe(e));
                  }
                },
              },
              t('issue_code'),
            ),
          );
          const edit = h('button', { class: 'small', 'data-testid': `edit-unit-${u.call_sign}`, onclick: () => this.unitForm.edit(u) }, t('edit'));
          const onOff = u.disabled_at_ms
            ? h(
                'button',
                { class: 'small', 'data-testid': `enable-unit-${u.call_sign}`, onclick: () => void this.run(() => post(`/api/units/${u.id}/enable`)) },
                t('enable'),
              )
            : h(
                'button',
                {
                  class: 'small danger',
                  'data-testid': `disable-unit-${u.call_sign}`,
                  onclick: () => {
                    if (confirm(`${t('confirm_disable_unit')} (${u.call_sign})`)) void this.run(() => post(`/api/units/${u.id}/disable`));
                  },
                },
                t('disable'),
              );
          return h(
            'tr',
            { 'data-unit-row': u.call_sign, class: u.disabled_at_ms ? 'disabled' : '' },
            h('td', {}, u.call_sign),
            h('td', {}, code(u.kind)),
            h('td', { 'data-testid': `unit-state-${u.call_sign}` }, u.disabled_at_ms ? t('disabled') : code(u.status)),
            h('td', {}, u.capabilities.join(', ')),
            h('td', {}, u.home_station ?? ''),
            u.disabled_at_ms ? h('td', {}) : codeCell,
            h('td', {}, edit, onOff),
          );
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

/** Adding a unit, or editing one: call sign, kind (from the configured list), capabilities and
 *  home station. Cleared once saved, so the next unit starts from an empty form. */
export class UnitForm {
  private callSign = h('input', { placeholder: t('call_sign'), 'data-testid': 'unit-call-sign' });
  private kind = h('select', { 'data-testid': 'unit-kind' });
  private caps = h('input', { placeholder: `${t('capabilities')} (patrol, k9…)`, 'data-testid': 'unit-capabilities' });
  private station = h('input', { placeholder: t('station'), 'data-testid': 'unit-station' });
  private submit = h('button', { type: 'submit', 'data-testid': 'save-unit' }, t('add_unit'));
  private cancel = h('button', { type: 'button', class: 'small', hidden: true, onclick: () => this.clear() }, t('cancel'));
  /** The unit being edited; none while adding. */
  private editing: number | null = null;
  el: HTMLFormElement;

  constructor(run: (action: () => Promise<unknown>) => Promise<void>) {
    this.el = h(
      'form',
      {
        class: 'row',
        'data-testid': 'unit-form',
        onsubmit: (e: Event) => {
          e.preventDefault();
          const body = {
            call_sign: this.callSign.value.trim(),
            kind: this.kind.value,
            capabilities: this.caps.value.split(',').map((c) => c.trim()).filter(Boolean),
            home_station: this.station.value.trim() || undefined,
          };
          const editing = this.editing;
          void run(async () => {
            if (editing === null) await create('/api/units', body);
            else await put(`/api/units/${editing}`, body);
            this.clear();
          });
        },
      },
      this.callSign,
      this.kind,
      this.caps,
      this.station,
      this.submit,
      this.cancel,
    );
  }

  /** Fills the kind list from the server's configuration (`unit_kinds`). */
  async loadKinds(): Promise<void> {
    const chosen = this.kind.value;
    const { kinds } = await get<{ kinds: string[] }>('/api/units/kinds');
    replace(this.kind, kinds.map((k) => h('option', { value: k, selected: k === chosen }, code(k))));
  }

  /** Puts a unit in the form to be changed. */
  edit(u: Unit): void {
    this.editing = u.id;
    this.callSign.value = u.call_sign;
    if (![...this.kind.options].some((o) => o.value === u.kind)) {
      // A kind since removed from the configuration stays choosable for this unit.
      this.kind.append(h('option', { value: u.kind }, code(u.kind)));
    }
    this.kind.value = u.kind;
    this.caps.value = u.capabilities.join(', ');
    this.station.value = u.home_station ?? '';
    replace(this.submit, `${t('save')} (${u.call_sign})`);
    this.cancel.hidden = false;
    this.callSign.focus();
  }

  /** Back to adding, with every field empty. */
  clear(): void {
    this.editing = null;
    this.callSign.value = '';
    this.caps.value = '';
    this.station.value = '';
    replace(this.submit, t('add_unit'));
    this.cancel.hidden = true;
  }
}
