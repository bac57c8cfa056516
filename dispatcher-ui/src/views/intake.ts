//! Incident intake built for speed: address autocomplete from the built-in geocoder or a map
//! click (reverse geocode), type and priority codes, caller, callback number and notes; Enter
//! moves on. Every call starts from an empty form. Before a new incident is created, open and
//! recent incidents nearby or at the same address are shown: the call is added to one of them as
//! another caller, or created anyway.

import { create, describe, get } from '../api';
import { h, replace, say } from '../dom';
import { code, KINDS, t } from '../i18n';
import { distance } from '../format';
import type { Incident, PossibleDuplicate, Premise } from '../types';
import { premiseList } from './premises';

interface Hit {
  label: string;
  lat: number;
  lon: number;
}


export interface IntakeHooks {
  showPick: (lat: number, lon: number, fly: boolean) => void;
  created: (incident: Incident) => void;
  /** The call was added to an existing incident as another caller. */
  joined: (incidentId: number) => void;
}

export class IntakeForm {
  el: HTMLFormElement;
  private address: HTMLInputElement;
  private suggestions: HTMLUListElement;
  private kind: HTMLInputElement;
  private priority: HTMLSelectElement;
  private caller: HTMLInputElement;
  private callback: HTMLInputElement;
  private notes: HTMLTextAreaElement;
  private duplicates = h('div', { class: 'duplicates', 'data-testid': 'duplicates', hidden: true });
  /** The location whose possible duplicates the operator has seen (and chose to create anyway). */
  private checked: string | null = null;
  private where: HTMLElement;
  /** What the agency knows about the call's location. */
  private premises = h('div', { class: 'intake-premises' });
  private status: HTMLElement;
  private location: { lat: number; lon: number } | null = null;
  private hits: Hit[] = [];
  /** The text the shown suggestions answer: Enter on newer text looks it up first. */
  private hitsFor = '';
  private active = -1;
  private seq = 0;
  private debounce: ReturnType<typeof setTimeout> | null = null;

  constructor(private hooks: IntakeHooks) {
    this.address = h('input', {
      id: 'intake-address',
      autocomplete: 'off',
      placeholder: t('address_hint'),
      'aria-autocomplete': 'list',
    });
    this.suggestions = h('ul', { class: 'suggestions', role: 'listbox', 'data-testid': 'suggestions' });
    this.kind = h('input', { id: 'intake-kind', list: 'kinds', autocomplete: 'off' });
    this.priority = h(
      'select',
      { id: 'intake-priority' },
      h('option', { value: '', selected: true }, t('choose_priority')),
      [0, 1, 2, 3, 4].map((p) => h('option', { value: p }, `P${p}`)),
    );
    this.caller = h('input', { id: 'intake-caller', autocomplete: 'off' });
    this.callback = h('input', { id: 'intake-callback', autocomplete: 'off', type: 'tel' });
    this.notes = h('textarea', { id: 'intake-notes', rows: 2 });
    this.where = h('div', { class: 'where', 'data-testid': 'intake-location' });
    this.status = h('div', { class: 'form-status', role: 'status' });
    this.el = h(
      'form',
      { class: 'intake', 'data-testid': 'intake', novalidate: true },
      h('h2', {}, t('new_incident')),
      h('label', { for: 'intake-address' }, t('address')),
      h('div', { class: 'autocomplete' }, this.address, this.suggestions),
      this.where,
      this.premises,
      h(
        'div',
        { class: 'row' },
        h('div', {}, h('label', { for: 'intake-kind' }, t('kind')), this.kind),
        h('div', {}, h('label', { for: 'intake-priority' }, t('priority')), this.priority),
      ),
      h('datalist', { id: 'kinds' }, KINDS.map((k) => h('option', { value: k, label: code(k) }))),
      h(
        'div',
        { class: 'row' },
        h('div', {}, h('label', { for: 'intake-caller' }, t('caller')), this.caller),
        h('div', {}, h('label', { for: 'intake-callback' }, t('callback')), this.callback),
      ),
      h('label', { for: 'intake-notes' }, t('notes')),
      this.notes,
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'create-incident' }, t('create')),
      this.duplicates,
      this.status,
    );
    this.renderWhere();
    this.address.addEventListener('input', () => this.search());
    this.address.addEventListener('keydown', (e) => this.addressKey(e));
    for (const f of [this.kind, this.priority, this.caller, this.callback]) {
      f.addEventListener('keydown', (e) => {
        if ((e as KeyboardEvent).key === 'Enter') {
          e.preventDefault();
          this.next(f);
        }
      });
    }
    this.el.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit();
    });
  }

  focus(): void {
    this.address.focus();
    this.address.select();
  }

  /** Moves focus to the field after `from`. */
  private next(from: HTMLElement): void {
    const order: HTMLElement[] = [this.address, this.kind, this.priority, this.caller, this.callback, this.notes];
    order[Math.min(order.indexOf(from) + 1, order.length - 1)].focus();
  }

  private search(): void {
    if (this.debounce) clearTimeout(this.debounce);
    const q = this.address.value.trim();
    if (q.length < 2) {
      this.setHits([], q);
      return;
    }
    this.debounce = setTimeout(() => void this.lookUp(q), 120);
  }

  /** Asks the geocoder for `q` and shows the answer unless newer text was looked up since. */
  private async lookUp(q: string): Promise<void> {
    const mine = ++this.seq;
    try {
      const hits = await get<Hit[]>(`/api/geocode?q=${encodeURIComponent(q)}&limit=8`);
      if (mine === this.seq) this.setHits(hits, q);
    } catch (e) {
      if (mine === this.seq) {
        this.setHits([], q);
        say(this.status, describe(e), true);
      }
    }
  }

  private setHits(hits: Hit[], query: string): void {
    this.hits = hits;
    this.hitsFor = query;
    this.active = hits.length ? 0 : -1;
    this.renderHits();
  }

  private renderHits(): void {
    replace(
      this.suggestions,
      this.hits.map((hit, i) =>
        h(
          'li',
          {
            role: 'option',
            class: i === this.active ? 'active' : '',
            'aria-selected': i === this.active ? 'true' : 'false',
            onmousedown: (e: Event) => {
              e.preventDefault();
              this.choose(hit);
            },
          },
          hit.label,
        ),
      ),
    );
  }

  private addressKey(e: KeyboardEvent): void {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      if (!this.hits.length) return;
      e.preventDefault();
      const d = e.key === 'ArrowDown' ? 1 : -1;
      this.active = (this.active + d + this.hits.length) % this.hits.length;
      this.renderHits();
    } else if (e.key === 'Enter') {
      e.preventDefault();
      void this.takeSuggestion();
    } else if (e.key === 'Escape') {
      this.setHits([], this.address.value.trim());
    }
  }

  /** Enter: the highlighted suggestion for what is typed now, never one for an earlier prefix. */
  private async takeSuggestion(): Promise<void> {
    const q = this.address.value.trim();
    if (q.length >= 2 && q !== this.hitsFor) {
      if (this.debounce) clearTimeout(this.debounce);
      await this.lookUp(q);
      if (this.address.value.trim() !== q) return;
    }
    const hit = this.hits[this.active];
    if (hit) this.choose(hit);
    else if (this.location) this.next(this.address);
  }

  private choose(hit: Hit): void {
    this.address.value = hit.label;
    this.seq++;
    this.setHits([], hit.label);
    this.setLocation(hit.lat, hit.lon, true);
    this.next(this.address);
  }

  /** A map click: take the point and fill the address from the reverse geocoder. */
  async pick(lat: number, lon: number): Promise<void> {
    this.setLocation(lat, lon, false);
    try {
      const hit = await get<Hit>(`/api/geocode/reverse?lat=${lat}&lon=${lon}`);
      this.address.value = hit.label;
    } catch {
      this.address.value = `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
    }
    this.hitsFor = this.address.value;
  }

  private setLocation(lat: number, lon: number, fly: boolean): void {
    this.location = { lat, lon };
    this.hooks.showPick(lat, lon, fly);
    this.renderWhere();
    void this.loadPremises(lat, lon);
  }

  /** Shows the hazards and notes the agency keeps for the call's location. */
  private async loadPremises(lat: number, lon: number): Promise<void> {
    replace(this.premises);
    try {
      const found = await get<Premise[]>(`/api/premises/at?lat=${lat}&lon=${lon}`);
      if (this.location?.lat !== lat || this.location?.lon !== lon || found.length === 0) return;
      replace(this.premises, h('h3', {}, t('at_this_place')), premiseList(found));
    } catch (e) {
      say(this.status, `${t('error')}: ${describe(e)}`, true);
    }
  }

  private renderWhere(): void {
    this.where.textContent = this.location
      ? `${t('location')}: ${this.location.lat.toFixed(5)}, ${this.location.lon.toFixed(5)}`
      : t('no_location');
    this.where.classList.toggle('missing', !this.location);
  }

  /** Where the call is, as the duplicate check remembers it. */
  private place(): string {
    return `${this.location?.lat},${this.location?.lon},${this.address.value.trim()}`;
  }

  private async submit(): Promise<void> {
    if (!this.location) {
      say(this.status, t('no_location'), true);
      this.address.focus();
      return;
    }
    if (this.kind.value.trim() === '') {
      say(this.status, t('kind_required'), true);
      this.kind.focus();
      return;
    }
    if (this.priority.value === '') {
      say(this.status, t('priority_required'), true);
      this.priority.focus();
      return;
    }
    if (this.checked !== this.place()) {
      const found = await this.possibleDuplicates();
      if (found.length > 0) {
        this.checked = this.place();
        this.showDuplicates(found);
        return;
      }
    }
    await this.createIncident();
  }

  /** Open and recent incidents near the call or at its address (none when the check fails). */
  private async possibleDuplicates(): Promise<PossibleDuplicate[]> {
    const where = this.location;
    if (!where) return [];
    const address = this.address.value.trim();
    const query = `lat=${where.lat}&lon=${where.lon}${address ? `&address=${encodeURIComponent(address)}` : ''}`;
    try {
      return await get<PossibleDuplicate[]>(`/api/incidents/duplicates?${query}`);
    } catch (e) {
      say(this.status, `${t('error')}: ${describe(e)}`, true);
      return [];
    }
  }

  private showDuplicates(found: PossibleDuplicate[]): void {
    say(this.status, '', false);
    this.duplicates.hidden = false;
    replace(
      this.duplicates,
      h('h3', {}, t('possible_duplicates')),
      h(
        'ul',
        {},
        found.map(({ incident: i, distance_m, same_address }) =>
          h(
            'li',
            { 'data-incident': i.id },
            h('span', { class: 'prio' }, `P${i.priority}`),
            ` #${i.id} ${i.kind} · ${i.address ?? ''} · ${same_address ? t('same_address') : distance(distance_m)} · ${code(i.phase)} `,
            h(
              'button',
              { type: 'button', 'data-testid': `add-caller-${i.id}`, onclick: () => void this.addCaller(i.id) },
              `${t('add_as_caller')} #${i.id}`,
            ),
          ),
        ),
      ),
      h(
        'button',
        { type: 'button', 'data-testid': 'create-anyway', onclick: () => void this.createIncident() },
        t('create_anyway'),
      ),
    );
  }

  private hideDuplicates(): void {
    this.duplicates.hidden = true;
    replace(this.duplicates);
  }

  private async createIncident(): Promise<void> {
    if (!this.location) return;
    const body = {
      kind: this.kind.value.trim(),
      priority: Number(this.priority.value),
      lat: this.location.lat,
      lon: this.location.lon,
      address: this.address.value.trim() || undefined,
      caller: this.caller.value.trim() || undefined,
      callback: this.callback.value.trim() || undefined,
      notes: this.notes.value.trim() || undefined,
    };
    try {
      const incident = await create<Incident>('/api/incidents', body);
      say(this.status, `#${incident.id} ${t('saved')}`, false);
      this.reset();
      this.hooks.created(incident);
    } catch (e) {
      say(this.status, `${t('error')}: ${describe(e)}`, true);
    }
  }

  /** Adds this call to incident `id` as another caller, with what the caller reports. */
  private async addCaller(id: number): Promise<void> {
    const body = {
      caller: this.caller.value.trim() || undefined,
      callback: this.callback.value.trim() || undefined,
      text: this.notes.value.trim() || this.address.value.trim() || undefined,
    };
    try {
      await create(`/api/incidents/${id}/callers`, body);
      say(this.status, `${t('caller_added')} #${id}`, false);
      this.reset();
      this.hooks.joined(id);
    } catch (e) {
      say(this.status, `${t('error')}: ${describe(e)}`, true);
    }
  }

  /** Empties the form for the next call: nothing carries over from this one. */
  private reset(): void {
    this.el.reset();
    this.address.value = '';
    this.kind.value = '';
    this.priority.value = '';
    this.caller.value = '';
    this.callback.value = '';
    this.notes.value = '';
    this.location = null;
    this.checked = null;
    replace(this.premises);
    this.hideDuplicates();
    this.renderWhere();
  }
}
