//! Incident intake built for speed: address autocomplete from the built-in geocoder or a map
//! click (reverse geocode), type and priority codes, caller and notes; Enter moves on.

import { create, describe, get } from '../api';
import { h, replace, say } from '../dom';
import { t } from '../i18n';
import type { Incident } from '../types';

interface Hit {
  label: string;
  lat: number;
  lon: number;
}

/** Incident types offered first (free text is allowed too). */
export const KINDS = [
  'burglary',
  'robbery',
  'assault',
  'traffic_accident',
  'domestic_violence',
  'missing_person',
  'theft',
  'disturbance',
  'fire',
  'suspicious_person',
];

export interface IntakeHooks {
  showPick: (lat: number, lon: number, fly: boolean) => void;
  created: (incident: Incident) => void;
}

export class IntakeForm {
  el: HTMLFormElement;
  private address: HTMLInputElement;
  private suggestions: HTMLUListElement;
  private kind: HTMLInputElement;
  private priority: HTMLSelectElement;
  private caller: HTMLInputElement;
  private notes: HTMLTextAreaElement;
  private where: HTMLElement;
  private status: HTMLElement;
  private location: { lat: number; lon: number } | null = null;
  private hits: Hit[] = [];
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
    this.kind = h('input', { id: 'intake-kind', list: 'kinds', value: 'burglary', autocomplete: 'off' });
    this.priority = h(
      'select',
      { id: 'intake-priority' },
      [0, 1, 2, 3, 4].map((p) => h('option', { value: p, selected: p === 2 }, `P${p}`)),
    );
    this.caller = h('input', { id: 'intake-caller', autocomplete: 'off' });
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
      h(
        'div',
        { class: 'row' },
        h('div', {}, h('label', { for: 'intake-kind' }, t('kind')), this.kind),
        h('div', {}, h('label', { for: 'intake-priority' }, t('priority')), this.priority),
      ),
      h('datalist', { id: 'kinds' }, KINDS.map((k) => h('option', { value: k }))),
      h('label', { for: 'intake-caller' }, t('caller')),
      this.caller,
      h('label', { for: 'intake-notes' }, t('notes')),
      this.notes,
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'create-incident' }, t('create')),
      this.status,
    );
    this.renderWhere();
    this.address.addEventListener('input', () => this.search());
    this.address.addEventListener('keydown', (e) => this.addressKey(e));
    for (const f of [this.kind, this.priority, this.caller]) {
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
    const order: HTMLElement[] = [this.address, this.kind, this.priority, this.caller, this.notes];
    order[Math.min(order.indexOf(from) + 1, order.length - 1)].focus();
  }

  private search(): void {
    if (this.debounce) clearTimeout(this.debounce);
    const q = this.address.value.trim();
    if (q.length < 2) {
      this.setHits([]);
      return;
    }
    this.debounce = setTimeout(async () => {
      const mine = ++this.seq;
      try {
        const hits = await get<Hit[]>(`/api/geocode?q=${encodeURIComponent(q)}&limit=8`);
        if (mine === this.seq) this.setHits(hits);
      } catch (e) {
        if (mine === this.seq) {
          this.setHits([]);
          say(this.status, describe(e), true);
        }
      }
    }, 120);
  }

  private setHits(hits: Hit[]): void {
    this.hits = hits;
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
      const hit = this.hits[this.active];
      if (hit) this.choose(hit);
      else if (this.location) this.next(this.address);
    } else if (e.key === 'Escape') {
      this.setHits([]);
    }
  }

  private choose(hit: Hit): void {
    this.address.value = hit.label;
    this.seq++;
    this.setHits([]);
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
  }

  private setLocation(lat: number, lon: number, fly: boolean): void {
    this.location = { lat, lon };
    this.hooks.showPick(lat, lon, fly);
    this.renderWhere();
  }

  private renderWhere(): void {
    this.where.textContent = this.location
      ? `${t('location')}: ${this.location.lat.toFixed(5)}, ${this.location.lon.toFixed(5)}`
      : t('no_location');
    this.where.classList.toggle('missing', !this.location);
  }

  private async submit(): Promise<void> {
    if (!this.location) {
      say(this.status, t('no_location'), true);
      this.address.focus();
      return;
    }
    const body = {
      kind: this.kind.value.trim(),
      priority: Number(this.priority.value),
      lat: this.location.lat,
      lon: this.location.lon,
      address: this.address.value.trim() || undefined,
      caller: this.caller.value.trim() || undefined,
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

  private reset(): void {
    this.address.value = '';
    this.caller.value = '';
    this.notes.value = '';
    this.location = null;
    this.renderWhere();
  }
}
