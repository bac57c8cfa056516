//! One incident's timeline, laid out as its after-action report: the call, the units ordered
//! with every milestone time, a replay of their movements on a map of its own, and every event
//! (when, what, who, what changed). The page prints as the report (print stylesheet); while the
//! replay runs, events after its clock are greyed.

import { describe, get } from '../api';
import { h, replace } from '../dom';
import { code, t, type Key } from '../i18n';
import { clock, dateTime, statusColour } from '../format';
import type { Incident, Order, TimelineEvent } from '../types';
import { ReplayPlayer, type Track, type TrackPoint } from './replay';

/** Detail fields kept for machines (sequence numbers, internal ids, counters): not part of the
 *  story a reader follows. */
const INTERNAL = new Set([
  'seq', 'device_id', 'entry_id', 'user_id', 'session_id', 'alert_event_id', 'event_id', 'replaced_device',
  'revoked_device', 'withdrawn_codes', 'expires_at_ms', 'sessions_ended',
]);
/** Fields whose value is a code with a translation. */
const CODED = new Set(['kind', 'state', 'status', 'reason', 'stage', 'phase', 'severity', 'role', 'from', 'to']);
/** Field names with a label of their own. */
const LABELS: Record<string, Key> = {
  address: 'address', caller: 'caller', callback: 'callback', kind: 'kind', priority: 'priority', notes: 'notes',
  call_sign: 'call_sign', state: 'status', status: 'status', disposition: 'disposition', severity: 'severity',
};

/** What an event says, in words: labelled fields, translated codes, the place as one location,
 *  times as clock times; internal ids and empty lists left out. */
export function summarise(e: TimelineEvent): string {
  const d = (e.detail ?? {}) as Record<string, unknown>;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(d)) {
    if (k === 'lat' && typeof v === 'number' && typeof d.lon === 'number') {
      parts.push(`${t('location')}: ${v.toFixed(5)}, ${d.lon.toFixed(5)}`);
      continue;
    }
    if (v === null || v === undefined || v === '' || INTERNAL.has(k) || k === 'lon') continue;
    if (Array.isArray(v) && v.length === 0) continue;
    const label = k in LABELS ? t(LABELS[k]) : k.replace(/_ms$/, '').replace(/_/g, ' ');
    let text: string;
    if (k === 'priority') text = `P${String(v)}`;
    else if (CODED.has(k) && typeof v === 'string') text = code(v);
    else if (k.endsWith('_ms') && typeof v === 'number') text = dateTime(v);
    else if (Array.isArray(v)) text = v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ');
    else text = typeof v === 'object' ? JSON.stringify(v) : String(v);
    parts.push(k === 'text' ? `“${text}”` : `${label}: ${text}`);
  }
  return parts.join(' · ');
}

/** Who did it, in words: the operator's name, the call sign of the unit whose tablet it was,
 *  or the system. */
export function actorName(e: TimelineEvent, orders: Order[]): string {
  const [kind, who] = e.actor.split(':', 2);
  if (kind === 'operator') return who ?? e.actor;
  if (kind === 'device') {
    const order = orders.find((o) => o.device_id === Number(who));
    return order ? order.call_sign : `${t('tablet_of')} #${who}`;
  }
  return kind === 'system' ? t('system_actor') : e.actor;
}

/** When each order reached each milestone: the order's own times, and the unit's status
 *  reports made while it held the order. */
export function milestones(order: Order, events: TimelineEvent[]): Record<string, number | null> {
  const reported = (kind: string) => events.find((e) => e.order_id === order.id && e.kind === kind)?.at_ms ?? null;
  return {
    queued_at: order.created_at_ms,
    delivered_at: order.delivered_at_ms,
    acknowledged_at: order.acknowledged_at_ms ?? null,
    decided_at: order.decided_at_ms,
    en_route_at: reported('unit_en_route'),
    on_scene_at: reported('unit_on_scene'),
    ended_at: order.completed_at_ms ?? order.ended_at_ms ?? null,
  };
}

export class TimelineView {
  el = h('section', { class: 'timeline-view report', 'data-testid': 'timeline' });
  private player: ReplayPlayer | null = null;

  async show(incidentId: number): Promise<void> {
    this.close();
    replace(this.el, h('h2', {}, `${t('timeline')} #${incidentId}`), '…');
    try {
      const [incident, events, orders] = await Promise.all([
        get<Incident>(`/api/incidents/${incidentId}`),
        get<TimelineEvent[]>(`/api/incidents/${incidentId}/timeline`),
        get<Order[]>(`/api/incidents/${incidentId}/assignments`),
      ]);
      const rows = events.map((e) =>
        h(
          'tr',
          { 'data-kind': e.kind, 'data-at': e.at_ms },
          h(
            'td',
            { title: e.at },
            dateTime(e.at_ms),
            e.received_at_ms !== undefined && e.received_at_ms - e.at_ms >= 1000
              ? h('small', { class: 'received' }, ` (${t('received')} ${clock(e.received_at_ms)})`)
              : null,
          ),
          h('td', {}, code(e.kind)),
          h('td', {}, actorName(e, orders)),
          h('td', { class: 'detail' }, summarise(e)),
        ),
      );
      const replay = h('div', { class: 'replay-slot' });
      replace(
        this.el,
        h(
          'div',
          { class: 'report-head' },
          h('h2', {}, `${t('report_title')} · #${incident.id} ${code(incident.kind)} · P${incident.priority}`),
          h('button', { class: 'no-print', 'data-testid': 'print-report', onclick: () => window.print() }, t('print_report')),
        ),
        callDetails(incident),
        h('h3', {}, t('units')),
        unitTable(orders, events),
        h('h3', {}, t('replay')),
        replay,
        h('h3', {}, t('timeline')),
        h(
          'table',
          { class: 'events' },
          h('tr', {}, h('th', {}, t('when')), h('th', {}, t('what')), h('th', {}, t('who')), h('th', {})),
          rows,
        ),
      );
      await this.startReplay(replay, incident, orders, rows);
    } catch (e) {
      replace(this.el, h('h2', {}, t('timeline')), h('div', { class: 'form-status' }, describe(e)));
    }
  }

  /** Stops the replay and frees its map (the view is left). */
  close(): void {
    this.player?.destroy();
    this.player = null;
  }

  private async startReplay(slot: HTMLElement, incident: Incident, orders: Order[], rows: HTMLElement[]): Promise<void> {
    const since = incident.created_at_ms - 5 * 60 * 1000;
    const until = incident.closed_at_ms ?? Date.now();
    const unitIds = [...new Set(orders.map((o) => o.unit_id))];
    const tracks: Track[] = await Promise.all(
      unitIds.map(async (id) => {
        const points = await get<TrackPoint[]>(`/api/units/${id}/trail?since_ms=${since}&until_ms=${until}`).catch(
          () => [],
        );
        const o = orders.find((x) => x.unit_id === id);
        return { callSign: o?.call_sign ?? String(id), points, colour: statusColour('en_route') };
      }),
    );
    const moved = tracks.some((tr) => tr.points.length > 0);
    const start = Math.min(incident.created_at_ms, ...tracks.flatMap((tr) => tr.points.map((p) => p.at_ms)));
    const end = Math.max(until, start);
    this.player = new ReplayPlayer(incident, tracks, start, end, (at) => {
      for (const row of rows) row.classList.toggle('future', Number(row.dataset.at) > at);
    });
    replace(slot, moved ? null : h('p', { class: 'muted' }, t('no_tracks')), this.player.el);
    this.player.shown();
    this.player.seek(end);
  }
}

function callDetails(i: Incident): HTMLElement {
  const row = (label: string, value: string | null | undefined) =>
    value ? h('tr', {}, h('th', {}, label), h('td', {}, value)) : null;
  return h(
    'table',
    { class: 'call-details', 'data-testid': 'call-details' },
    row(t('kind'), code(i.kind)),
    row(t('priority'), `P${i.priority}`),
    row(t('address'), i.address),
    row(t('location'), `${i.lat.toFixed(5)}, ${i.lon.toFixed(5)}`),
    row(t('caller'), i.caller),
    row(t('callback'), i.callback),
    row(t('notes'), i.notes),
    row(t('status'), code(i.phase ?? i.status)),
    row(t('created_at'), dateTime(i.created_at_ms)),
    row(t('closed_at'), i.closed_at_ms ? dateTime(i.closed_at_ms) : null),
    row(t('disposition'), i.disposition),
  );
}

function unitTable(orders: Order[], events: TimelineEvent[]): HTMLElement {
  const columns = ['queued_at', 'delivered_at', 'acknowledged_at', 'decided_at', 'en_route_at', 'on_scene_at', 'ended_at'] as const;
  return h(
    'table',
    { class: 'report-units', 'data-testid': 'report-units' },
    h('tr', {}, h('th', {}, t('call_sign')), h('th', {}, t('status')), columns.map((c) => h('th', {}, t(c)))),
    orders.map((o) => {
      const times = milestones(o, events);
      return h(
        'tr',
        { 'data-order': o.id },
        h('td', {}, o.call_sign),
        h('td', {}, code(o.state), o.decline_reason ? ` (${code(o.decline_reason)})` : ''),
        columns.map((c) => h('td', {}, times[c] ? clock(times[c] as number) : '—')),
      );
    }),
  );
}
