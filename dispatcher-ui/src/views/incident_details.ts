//! What the operator learns about an incident after intake: its callback number, the narrative
//! and further callers (append-only, newest last), a line added with Enter, and an edit form for
//! type, priority, address, caller, callback and notes. Every change reaches the units' tablets.

import { create, describe, get, patch } from '../api';
import { h, replace, say } from '../dom';
import { t } from '../i18n';
import { clock } from '../format';
import type { Store } from '../store';
import type { Incident, IncidentEntry } from '../types';

/** Events after which the selected incident's entries are read again. */
const ENTRY_EVENTS = new Set(['narrative_added', 'caller_added']);

export class IncidentDetails {
  el = h('div', { class: 'incident-details', 'data-testid': 'incident-details' });
  private entries: IncidentEntry[] = [];
  private entriesFor: number | null = null;
  private editing = false;
  private status = h('div', { class: 'form-status', role: 'status' });
  private line = h('input', {
    class: 'narrative-input',
    'data-testid': 'narrative-input',
    placeholder: t('add_narrative'),
    'aria-label': t('add_narrative'),
  });

  constructor(private store: Store) {
    this.line.addEventListener('keydown', (e) => {
      if ((e as KeyboardEvent).key === 'Enter') {
        e.preventDefault();
        void this.addLine();
      }
    });
    store.subscribe((what) => {
      if (what.has('selection')) {
        this.editing = false;
        this.line.value = '';
        say(this.status, '', false);
        void this.load();
      }
      const id = store.selectedIncident;
      if (what.has('events') && store.recent.some((e) => e.incident_id === id && ENTRY_EVENTS.has(e.kind))) {
        void this.load();
      }
    });
  }

  /** Reads the selected incident's entries. */
  async load(): Promise<void> {
    const id = this.store.selectedIncident;
    if (id === null) return;
    try {
      const entries = await get<IncidentEntry[]>(`/api/incidents/${id}/entries`);
      if (this.store.selectedIncident !== id) return;
      this.entries = entries;
      this.entriesFor = id;
      this.render(this.store.incidents.get(id));
    } catch (e) {
      say(this.status, describe(e), true);
    }
  }

  private async addLine(): Promise<void> {
    const id = this.store.selectedIncident;
    const text = this.line.value.trim();
    if (id === null || text === '') return;
    try {
      await create<IncidentEntry>(`/api/incidents/${id}/narrative`, { text });
      this.line.value = '';
      await this.load();
    } catch (e) {
      say(this.status, `${t('error')}: ${describe(e)}`, true);
    }
  }

  /** Draws the details of `incident` (hidden when there is none). */
  render(incident: Incident | undefined): HTMLElement {
    if (!incident) {
      replace(this.el);
      return this.el;
    }
    const entries = this.entriesFor === incident.id ? this.entries : [];
    replace(
      this.el,
      incident.caller || incident.callback
        ? h(
            'div',
            { class: 'caller', 'data-testid': 'incident-caller' },
            `${t('caller')}: ${incident.caller ?? ''}`,
            incident.callback ? h('a', { href: `tel:${incident.callback}`, class: 'callback' }, ` ☎ ${incident.callback}`) : null,
          )
        : null,
      incident.notes ? h('div', { class: 'notes' }, incident.notes) : null,
      this.editing ? this.editForm(incident) : h('button', { class: 'small', 'data-testid': 'edit-incident', onclick: () => this.toggleEdit(incident) }, t('edit_incident')),
      h('h3', {}, t('narrative')),
      h(
        'ol',
        { class: 'narrative', 'data-testid': 'narrative' },
        entries.map((e) =>
          h(
            'li',
            { class: `entry entry-${e.kind}` },
            h('span', { class: 'when' }, clock(e.at_ms)),
            h('span', { class: 'who' }, e.author),
            e.kind === 'caller'
              ? h('span', { class: 'what' }, `${t('another_caller')}: ${[e.caller, e.callback, e.text].filter(Boolean).join(' · ')}`)
              : h('span', { class: 'what' }, e.text ?? ''),
          ),
        ),
      ),
      this.line,
      this.status,
    );
    return this.el;
  }

  /** Whether the operator is typing a narrative line (a redraw must give the focus back). */
  typing(): boolean {
    return document.activeElement === this.line;
  }

  /** Gives the focus back to the narrative line after the panel was redrawn. */
  resumeTyping(): void {
    this.line.focus();
  }

  private toggleEdit(incident: Incident): void {
    this.editing = !this.editing;
    this.render(incident);
  }

  private editForm(incident: Incident): HTMLElement {
    const field = (name: string, value: string | null) =>
      h('input', { name, value: value ?? '', 'aria-label': t(name as 'kind'), 'data-testid': `edit-${name}` });
    const kind = field('kind', incident.kind);
    const address = field('address', incident.address);
    const caller = field('caller', incident.caller);
    const callback = field('callback', incident.callback);
    const notes = h('textarea', { name: 'notes', rows: 2, 'aria-label': t('notes') }, incident.notes ?? '');
    const priority = h(
      'select',
      { 'aria-label': t('priority'), 'data-testid': 'edit-priority' },
      [0, 1, 2, 3, 4].map((p) => h('option', { value: p, selected: p === incident.priority }, `P${p}`)),
    );
    const form = h(
      'form',
      { class: 'edit-incident', novalidate: true },
      h('div', { class: 'row' }, kind, priority),
      address,
      h('div', { class: 'row' }, caller, callback),
      notes,
      h(
        'div',
        { class: 'row' },
        h('button', { type: 'submit', class: 'primary', 'data-testid': 'save-incident' }, t('save')),
        h('button', { type: 'button', onclick: () => this.toggleEdit(incident) }, t('cancel')),
      ),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      // Only what the operator changed: each change is a timeline event and a tablet update.
      const text = (v: string) => (v.trim() === '' ? null : v.trim());
      const changes: Record<string, unknown> = {};
      if (kind.value.trim() !== incident.kind) changes.kind = kind.value.trim();
      if (Number(priority.value) !== incident.priority) changes.priority = Number(priority.value);
      for (const [name, input, was] of [
        ['address', address, incident.address],
        ['caller', caller, incident.caller],
        ['callback', callback, incident.callback],
        ['notes', notes, incident.notes],
      ] as const) {
        if (text(input.value) !== was) changes[name] = text(input.value);
      }
      if (Object.keys(changes).length === 0) {
        this.toggleEdit(incident);
        return;
      }
      void patch<Incident>(`/api/incidents/${incident.id}`, changes)
        .then((updated) => {
          // The live feed brings the change to every console; this one shows it at once.
          this.editing = false;
          this.store.incidents.set(updated.id, updated);
          this.store.changed('incidents');
        })
        .catch((err) => say(this.status, `${t('error')}: ${describe(err)}`, true));
    });
    return form;
  }
}
