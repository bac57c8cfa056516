//! Supervisor views: the incident list with filters, response-time figures (p50/p90 by
//! priority) and the JSON / CSV export.

import { describe, get } from '../api';
import { h, replace } from '../dom';
import { code, t } from '../i18n';
import { dateTime, duration } from '../format';
import type { Incident } from '../types';

interface Step {
  count: number;
  p50_s: number | null;
  p90_s: number | null;
}
interface Figures {
  priority: number | null;
  incidents: number;
  call_to_dispatch: Step;
  dispatch_to_acknowledgement: Step;
  acknowledgement_to_arrival: Step;
  call_to_arrival: Step;
}

/** Incidents matching the filters (status, priority, free text over the id, type, address,
 *  caller, callback number, notes and the call signs of the units ordered to it). */
export function filterIncidents(
  list: Incident[],
  f: { status: string; priority: string; text: string },
  callSigns: Map<number, string[]> = new Map(),
): Incident[] {
  const text = f.text.trim().toLowerCase();
  return list.filter(
    (i) =>
      (f.status === '' || i.status === f.status) &&
      (f.priority === '' || i.priority === Number(f.priority)) &&
      (text === '' ||
        [`#${i.id}`, i.kind, code(i.kind), i.address, i.caller, i.callback, i.notes, ...(callSigns.get(i.id) ?? [])]
          .join(' ')
          .toLowerCase()
          .includes(text)),
  );
}

export class SupervisorView {
  el = h('section', { class: 'supervisor-view', 'data-testid': 'supervisor' });
  private list = h('table', { class: 'incident-list' });
  private stats = h('div', { class: 'stats', 'data-testid': 'stats' });
  /** The period the figures cover, as dates and times. */
  private period = h('p', { class: 'period', 'data-testid': 'stats-period' });
  private incidents: Incident[] = [];
  /** The call signs ordered to each incident of the period (from its milestones). */
  private callSigns = new Map<number, string[]>();
  private status = h('select', {}, ['', 'open', 'dispatched', 'closed'].map((s) => h('option', { value: s }, s ? code(s) : t('all'))));
  private priority = h('select', {}, ['', '0', '1', '2', '3', '4'].map((p) => h('option', { value: p }, p ? `P${p}` : t('all'))));
  private text = h('input', { placeholder: t('filter'), 'data-testid': 'incident-search' });
  private since = h('input', { type: 'datetime-local' });
  private until = h('input', { type: 'datetime-local' });
  private exportJson = h('a', { class: 'button', 'data-testid': 'export-json' }, t('export_json'));
  private exportCsv = h('a', { class: 'button', 'data-testid': 'export-csv' }, t('export_csv'));
  private exportAll = h('a', { class: 'button', 'data-testid': 'export-all' }, t('export_all'));

  constructor(private openTimeline: (id: number) => void) {
    const day = new Date(Date.now() - 86_400_000);
    this.since.value = localInput(day);
    for (const el of [this.status, this.priority, this.text]) el.addEventListener('input', () => this.renderList());
    for (const el of [this.since, this.until]) el.addEventListener('change', () => void this.load());
    replace(
      this.el,
      h('h2', {}, t('incidents')),
      h('div', { class: 'row filters' }, this.status, this.priority, this.text),
      h('div', { class: 'row' }, h('label', {}, t('since')), this.since, h('label', {}, t('until')), this.until,
        h('button', { onclick: () => void this.load() }, t('refresh'))),
      h('div', { class: 'row' }, this.exportJson, this.exportCsv, this.exportAll),
      h('h3', {}, `${t('response_times')} — p50 / p90 (n)`),
      this.period,
      this.stats,
      this.list,
    );
  }

  /** The chosen period in milliseconds; the last 24 hours by default. */
  private periodMs(): [number, number] {
    const since = this.since.value ? new Date(this.since.value).getTime() : Date.now() - 86_400_000;
    const until = this.until.value ? new Date(this.until.value).getTime() : Date.now();
    return [since, until];
  }

  async load(): Promise<void> {
    const [since, until] = this.periodMs();
    const w = `since_ms=${since}&until_ms=${until}`;
    replace(this.period, `${dateTime(since)} – ${dateTime(until)}`);
    this.exportJson.setAttribute('href', `/api/export/incidents?format=json&${w}`);
    this.exportCsv.setAttribute('href', `/api/export/incidents?format=csv&${w}`);
    // The server names each download after the window shown (Content-Disposition).
    this.exportAll.setAttribute('href', `/api/export/archive?${w}`);
    for (const link of [this.exportJson, this.exportCsv, this.exportAll]) link.setAttribute('download', '');
    try {
      const [incidents, milestones] = await Promise.all([
        get<Incident[]>('/api/incidents?limit=1000'),
        get<{ incident_id: number; units: string[] }[]>(`/api/export/incidents?format=json&${w}`),
      ]);
      this.incidents = incidents;
      this.callSigns = new Map(milestones.map((m) => [m.incident_id, m.units]));
      this.renderList();
    } catch (e) {
      replace(this.list, h('tr', {}, h('td', {}, describe(e))));
    }
    try {
      const r = await get<{ by_priority: Figures[]; all: Figures }>(`/api/stats/response-times?${w}`);
      this.renderStats([...r.by_priority, r.all]);
    } catch (e) {
      replace(this.stats, describe(e));
    }
  }

  private renderList(): void {
    const rows = filterIncidents(
      this.incidents,
      { status: this.status.value, priority: this.priority.value, text: this.text.value },
      this.callSigns,
    );
    replace(
      this.list,
      h('tr', {}, ['#', t('priority'), t('kind'), t('address'), t('status'), t('when')].map((c) => h('th', {}, c))),
      rows.map((i) =>
        h(
          'tr',
          { class: 'clickable', 'data-incident': i.id, onclick: () => this.openTimeline(i.id) },
          h('td', {}, String(i.id)),
          h('td', {}, `P${i.priority}`),
          h('td', {}, code(i.kind)),
          h('td', {}, i.address ?? ''),
          h('td', {}, code(i.status)),
          h('td', {}, dateTime(i.created_at_ms)),
        ),
      ),
    );
  }

  private renderStats(figures: Figures[]): void {
    const cell = (s: Step) => h('td', {}, `${duration(s.p50_s)} / ${duration(s.p90_s)}`, h('small', {}, ` (${s.count})`));
    replace(
      this.stats,
      h(
        'table',
        {},
        h(
          'tr',
          {},
          h('th', {}, t('priority')),
          h('th', {}, t('count')),
          h('th', {}, t('call_to_dispatch')),
          h('th', {}, t('dispatch_to_ack')),
          h('th', {}, t('ack_to_arrival')),
          h('th', {}, t('call_to_arrival')),
        ),
        figures.map((f) =>
          h(
            'tr',
            {},
            h('td', {}, f.priority === null ? t('all') : `P${f.priority}`),
            h('td', {}, String(f.incidents)),
            cell(f.call_to_dispatch),
            cell(f.dispatch_to_acknowledgement),
            cell(f.acknowledgement_to_arrival),
            cell(f.call_to_arrival),
          ),
        ),
      ),
    );
  }
}

function localInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
