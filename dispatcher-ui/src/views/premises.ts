//! Premise information: the agency's hazards and notes about places. Admins see every entry in
//! force, import a CSV or GeoJSON file (whole or not at all) and remove entries; intake shows the
//! entries at a call's location (`PremiseList`).

import { describe, get, post, postFile } from '../api';
import { h, replace, say } from '../dom';
import { code, t } from '../i18n';
import { clock } from '../format';
import type { Premise } from '../types';

/** The entries at a location, most severe first, as intake shows them. */
export function premiseList(entries: Premise[]): HTMLElement {
  return h(
    'ul',
    { class: 'premises', 'data-testid': 'intake-premises' },
    entries.map((p) =>
      h('li', { class: `premise severity-${p.severity}` }, h('strong', {}, `${code(p.severity)} · ${p.label}`), ` — ${p.text}`),
    ),
  );
}

export class PremisesAdmin {
  el = h('div', { class: 'premises-admin', 'data-testid': 'premises-admin' });
  private table = h('table', {});
  private status = h('div', { class: 'form-status', role: 'status' });

  constructor() {
    const file = h('input', { type: 'file', accept: '.csv,.geojson,.json', 'data-testid': 'premises-file' });
    replace(
      this.el,
      h('h2', {}, t('premises')),
      h('p', { class: 'hint' }, t('premises_hint')),
      h(
        'form',
        {
          class: 'row',
          onsubmit: (e: Event) => {
            e.preventDefault();
            const chosen = file.files?.[0];
            if (chosen) void this.importFile(chosen);
          },
        },
        file,
        h('button', { type: 'submit', 'data-testid': 'premises-import' }, t('import')),
      ),
      this.status,
      this.table,
    );
  }

  private async importFile(file: File): Promise<void> {
    const type = file.name.toLowerCase().endsWith('.csv') ? 'text/csv' : 'application/geo+json';
    try {
      const r = await postFile<{ added: number }>('/api/premises/import', await file.text(), type);
      say(this.status, `${r.added} ${t('added')}`, false);
    } catch (e) {
      say(this.status, `${t('error')}: ${describe(e)}`, true);
    }
    await this.load();
  }

  async load(): Promise<void> {
    try {
      const entries = await get<Premise[]>('/api/premises');
      replace(
        this.table,
        h('tr', {}, [t('label'), t('severity'), t('location'), t('expires'), ''].map((c) => h('th', {}, c))),
        entries.map((p) =>
          h(
            'tr',
            { 'data-premise': p.id, class: `severity-${p.severity}` },
            h('td', {}, h('strong', {}, p.label), h('div', {}, p.text)),
            h('td', {}, code(p.severity)),
            h('td', {}, p.polygon ? `▱ ${p.polygon.length}` : `${p.lat?.toFixed(5)}, ${p.lon?.toFixed(5)} ± ${p.radius_m} m`),
            h('td', {}, p.expires_at_ms ? clock(p.expires_at_ms) : '—'),
            h(
              'td',
              {},
              h(
                'button',
                {
                  class: 'small danger',
                  onclick: async () => {
                    if (!confirm(`${t('remove')} ${p.label}?`)) return;
                    try {
                      await post(`/api/premises/${p.id}/remove`);
                    } catch (e) {
                      say(this.status, describe(e), true);
                    }
                    await this.load();
                  },
                },
                t('remove'),
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
