//! The unit status board and messages to one unit (both directions).

import { create, describe, get } from '../api';
import { h, replace, say } from '../dom';
import { code, t } from '../i18n';
import { clock, elapsed, statusColour } from '../format';
import type { Store } from '../store';
import type { Unit } from '../types';

/** A text to or from a unit, as `GET /api/units/{id}/messages` lists it. */
interface UnitText {
  id: number;
  direction: 'to_unit' | 'from_unit';
  author: string;
  text: string;
  created_at_ms: number;
  delivered_at_ms: number | null;
  acknowledged_at_ms: number | null;
}

/** Units sorted for the board: by status group, then call sign. */
export function boardOrder(units: Unit[]): Unit[] {
  const rank = ['on_scene', 'en_route', 'assigned', 'available', 'out_of_service'];
  return [...units].sort(
    (a, b) =>
      (rank.indexOf(a.status) + 10) % 10 - ((rank.indexOf(b.status) + 10) % 10) ||
      a.call_sign.localeCompare(b.call_sign),
  );
}

export class UnitBoard {
  el = h('section', { class: 'units-view', 'data-testid': 'unit-board' });
  private table = h('table', { class: 'board' });
  private chat = h('div', { class: 'chat' });
  private chatUnit: number | null = null;

  constructor(private store: Store) {
    replace(this.el, h('h2', {}, t('units')), this.table, this.chat);
    store.subscribe((what) => {
      if (what.has('units')) this.render();
      if (what.has('events') && this.chatUnit !== null) {
        const e = store.recent[0];
        if (e && e.unit_id === this.chatUnit && /message|text/.test(e.kind)) void this.loadChat();
      }
    });
  }

  render(): void {
    const now = Date.now();
    replace(
      this.table,
      h(
        'tr',
        {},
        [t('call_sign'), t('status'), t('capabilities'), t('station'), t('last_fix'), ''].map((c) => h('th', {}, c)),
      ),
      boardOrder([...this.store.units.values()]).map((u) => {
        const dot = h('span', { class: 'dot' });
        dot.style.background = statusColour(u.status);
        return h(
          'tr',
          { 'data-unit': u.id },
          h('td', {}, dot, ' ', h('strong', {}, u.call_sign)),
          h(
            'td',
            {},
            code(u.status),
            u.link_lost_at_ms !== null
              ? h('span', { class: 'no-link', 'data-testid': 'no-link' }, ` ⚠ ${t('no_link')} ${elapsed(now - u.link_lost_at_ms)}`)
              : null,
          ),
          h('td', {}, u.capabilities.join(', ')),
          h('td', {}, u.home_station ?? ''),
          h('td', {}, u.position ? elapsed(now - u.position.received_ms) : '—'),
          h('td', {}, h('button', { class: 'small', onclick: () => this.openChat(u.id) }, t('message'))),
        );
      }),
    );
  }

  private openChat(unitId: number): void {
    this.chatUnit = unitId;
    void this.loadChat();
  }

  private async loadChat(): Promise<void> {
    const id = this.chatUnit;
    if (id === null) return;
    const unit = this.store.units.get(id);
    const log = h('ul', { class: 'chat-log' });
    const input = h('input', { placeholder: t('message'), maxlength: 2000 });
    const status = h('div', { class: 'form-status', role: 'status' });
    const form = h(
      'form',
      {
        class: 'row',
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const text = input.value.trim();
          if (!text) return;
          try {
            await create(`/api/units/${id}/messages`, { text });
            input.value = '';
            void this.loadChat();
          } catch (err) {
            say(status, `${t('error')}: ${describe(err)}`, true);
          }
        },
      },
      input,
      h('button', { type: 'submit' }, t('send')),
    );
    replace(this.chat, h('h3', {}, `${t('messages')} — ${unit?.call_sign ?? id}`), log, form, status);
    try {
      const messages = await get<UnitText[]>(`/api/units/${id}/messages`);
      replace(
        log,
        messages.map((m) =>
          h(
            'li',
            { class: m.direction === 'from_unit' ? 'from-unit' : 'to-unit', 'data-text': m.id },
            h('time', {}, clock(m.created_at_ms)),
            ' ',
            h('em', {}, m.direction === 'from_unit' ? (unit?.call_sign ?? m.author) : m.author),
            ' ',
            m.text,
            m.acknowledged_at_ms ? ' ✓✓' : m.delivered_at_ms ? ' ✓' : '',
          ),
        ),
      );
    } catch (err) {
      replace(log, h('li', { class: 'empty' }, describe(err)));
    }
    input.focus();
  }
}
