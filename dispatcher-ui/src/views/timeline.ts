//! One incident's timeline: every event, when, who did it and what, and a map replay of the
//! movements of the units that were ordered to it.

import { describe, get } from '../api';
import { h, replace } from '../dom';
import { code, t } from '../i18n';
import { clock, dateTime, statusColour } from '../format';
import type { LiveMap } from '../map';
import type { Incident, Order, TimelineEvent } from '../types';

/** A short, readable summary of an event's detail. */
export function summarise(e: TimelineEvent): string {
  const d = e.detail ?? {};
  const parts: string[] = [];
  for (const [k, v] of Object.entries(d)) {
    if (v === null || v === undefined || v === '') continue;
    const text = typeof v === 'object' ? JSON.stringify(v) : String(v);
    parts.push(`${k}: ${k === 'state' || k === 'status' ? code(text) : text}`);
  }
  return parts.join(' · ');
}

export class TimelineView {
  el = h('section', { class: 'timeline-view', 'data-testid': 'timeline' });

  constructor(private map: LiveMap) {}

  async show(incidentId: number): Promise<void> {
    replace(this.el, h('h2', {}, `${t('timeline')} #${incidentId}`), '…');
    try {
      const [incident, events, orders] = await Promise.all([
        get<Incident>(`/api/incidents/${incidentId}`),
        get<TimelineEvent[]>(`/api/incidents/${incidentId}/timeline`),
        get<Order[]>(`/api/incidents/${incidentId}/assignments`),
      ]);
      const replayBtn = h(
        'button',
        { 'data-testid': 'replay', onclick: () => void this.replay(incident, orders) },
        t('replay'),
      );
      replace(
        this.el,
        h('h2', {}, `${t('timeline')} #${incident.id} ${code(incident.kind)} · P${incident.priority}`),
        h('div', { class: 'addr' }, incident.address ?? ''),
        replayBtn,
        h(
          'table',
          { class: 'events' },
          h('tr', {}, h('th', {}, t('when')), h('th', {}, t('what')), h('th', {}, t('who')), h('th', {})),
          events.map((e) =>
            h(
              'tr',
              { 'data-kind': e.kind },
              h(
                'td',
                { title: e.at },
                dateTime(e.at_ms),
                e.received_at_ms !== undefined && e.received_at_ms - e.at_ms >= 1000
                  ? h('small', { class: 'received' }, ` (${t('received')} ${clock(e.received_at_ms)})`)
                  : null,
              ),
              h('td', {}, code(e.kind)),
              h('td', {}, e.actor),
              h('td', { class: 'detail' }, summarise(e)),
            ),
          ),
        ),
      );
    } catch (e) {
      replace(this.el, h('h2', {}, t('timeline')), h('div', { class: 'form-status' }, describe(e)));
    }
  }

  private async replay(incident: Incident, orders: Order[]): Promise<void> {
    const since = incident.created_at_ms - 5 * 60 * 1000;
    const until = incident.closed_at_ms ?? Date.now();
    const unitIds = [...new Set(orders.map((o) => o.unit_id))];
    const trails = await Promise.all(
      unitIds.map(async (id) => {
        const points = await get<{ lat: number; lon: number; at_ms: number }[]>(
          `/api/units/${id}/trail?since_ms=${since}&until_ms=${until}`,
        ).catch(() => []);
        const o = orders.find((x) => x.unit_id === id);
        return { callSign: o?.call_sign ?? String(id), points, colour: statusColour('en_route') };
      }),
    );
    await this.map.replay(trails);
  }
}
