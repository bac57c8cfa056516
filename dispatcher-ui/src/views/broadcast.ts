//! Broadcasts (CAP 1.2 shaped) to all units, a station, or an area drawn on the map, with the
//! live count of units inside the area before sending and delivery counts after.

import { create, describe, get, post } from '../api';
import { h, replace, say } from '../dom';
import { t } from '../i18n';
import type { LiveMap } from '../map';
import type { Unit } from '../types';

interface BroadcastSummary {
  id: number;
  headline: string;
  counts?: { recipients: number; delivered: number; acknowledged: number };
  recipients?: number;
}

export class BroadcastView {
  el = h('section', { class: 'broadcast-view', 'data-testid': 'broadcast' });
  private count = h('strong', { 'data-testid': 'recipient-count' }, '—');
  private status = h('div', { class: 'form-status', role: 'status' });
  private sent = h('ul', { class: 'sent' });
  private polygon: [number, number][] = [];
  private countSeq = 0;

  constructor(map: LiveMap) {
    const target = h(
      'select',
      { id: 'bc-target' },
      h('option', { value: 'all' }, t('target_all')),
      h('option', { value: 'station' }, t('target_station')),
      h('option', { value: 'polygon' }, t('target_polygon')),
    );
    const station = h('input', { id: 'bc-station', placeholder: t('station') });
    const headline = h('input', { id: 'bc-headline', maxlength: 200, required: true });
    const description = h('textarea', { id: 'bc-description', rows: 2 });
    const instruction = h('input', { id: 'bc-instruction' });
    const sel = (id: string, values: string[]) =>
      h('select', { id }, values.map((v) => h('option', { value: v }, v)));
    const urgency = sel('bc-urgency', ['Immediate', 'Expected', 'Future', 'Past', 'Unknown']);
    const severity = sel('bc-severity', ['Extreme', 'Severe', 'Moderate', 'Minor', 'Unknown']);
    const certainty = sel('bc-certainty', ['Observed', 'Likely', 'Possible', 'Unlikely', 'Unknown']);
    severity.value = 'Severe';
    certainty.value = 'Likely';
    const drawBtn = h('button', { type: 'button', 'data-testid': 'draw-area' }, t('draw_polygon'));
    let drawing = false;
    drawBtn.addEventListener('click', () => {
      drawing = !drawing;
      if (drawing) map.startDrawing();
      else map.stopDrawing();
      drawBtn.textContent = drawing ? t('finish_polygon') : t('draw_polygon');
      target.value = 'polygon';
    });
    map.onPolygon = (p) => {
      this.polygon = p;
      void this.recount();
    };
    const form = h(
      'form',
      {
        onsubmit: async (e: Event) => {
          e.preventDefault();
          let tgt: unknown = { all: true };
          if (target.value === 'station') tgt = { station: station.value.trim() };
          if (target.value === 'polygon') tgt = { polygon: this.polygon };
          try {
            const r = await create<BroadcastSummary>('/api/broadcasts', {
              target: tgt,
              urgency: urgency.value,
              severity: severity.value,
              certainty: certainty.value,
              headline: headline.value.trim(),
              description: description.value.trim() || undefined,
              instruction: instruction.value.trim() || undefined,
            });
            say(this.status, `#${r.id}: ${t('recipients')} ${r.counts?.recipients ?? r.recipients ?? '?'}`, false);
            void this.loadSent();
          } catch (err) {
            say(this.status, `${t('error')}: ${describe(err)}`, true);
          }
        },
      },
      h('label', { for: 'bc-target' }, t('target')),
      target,
      station,
      h('div', { class: 'row' }, drawBtn, h('button', { type: 'button', onclick: () => map.clearDrawing() }, t('clear_polygon'))),
      h('div', {}, `${t('recipients')}: `, this.count),
      h('label', { for: 'bc-headline' }, t('headline')),
      headline,
      h('label', { for: 'bc-description' }, t('description')),
      description,
      h('label', { for: 'bc-instruction' }, t('instruction')),
      instruction,
      h(
        'div',
        { class: 'row' },
        h('div', {}, h('label', {}, t('urgency')), urgency),
        h('div', {}, h('label', {}, t('severity')), severity),
        h('div', {}, h('label', {}, t('certainty')), certainty),
      ),
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'send-broadcast' }, t('send')),
      this.status,
    );
    replace(this.el, h('h2', {}, t('broadcast')), form, h('h3', {}, t('sent_broadcasts')), this.sent);
  }

  /** Counts the units inside the drawn area now (server's live index). */
  private async recount(): Promise<void> {
    const mine = ++this.countSeq;
    if (this.polygon.length < 3) {
      this.count.textContent = '—';
      return;
    }
    try {
      const units = await post<Unit[]>('/api/units/within', { polygon: this.polygon });
      if (mine === this.countSeq) this.count.textContent = `${units.length} (${units.map((u) => u.call_sign).join(', ')})`;
    } catch (e) {
      if (mine === this.countSeq) this.count.textContent = describe(e);
    }
  }

  async loadSent(): Promise<void> {
    try {
      const list = await get<BroadcastSummary[]>('/api/broadcasts');
      replace(
        this.sent,
        list.map((b) =>
          h(
            'li',
            {},
            `#${b.id} ${b.headline} — `,
            b.counts
              ? `${t('recipients')} ${b.counts.recipients} · ${t('delivered')} ${b.counts.delivered} · ${t('acknowledged')} ${b.counts.acknowledged}`
              : `${t('recipients')} ${b.recipients ?? '?'}`,
          ),
        ),
      );
    } catch (e) {
      replace(this.sent, h('li', { class: 'empty' }, `${t('not_available')}: ${describe(e)}`));
    }
  }
}
