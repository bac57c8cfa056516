//! The open-incident queue on the console: most urgent first, with how long each has waited.

import { h, replace } from '../dom';
import { code, t } from '../i18n';
import { elapsed, priorityColour } from '../format';
import type { Store } from '../store';

export class IncidentQueue {
  el = h('section', { class: 'queue', 'data-testid': 'incident-queue' });
  private list = h('ul', {});

  constructor(private store: Store) {
    replace(this.el, h('h2', {}, t('open_incidents')), this.list);
    store.subscribe((what) => {
      if (what.has('incidents') || what.has('selection') || what.has('orders')) this.render();
    });
    setInterval(() => this.render(), 5000);
  }

  render(): void {
    const incidents = this.store.openIncidents();
    replace(
      this.list,
      incidents.length === 0
        ? h('li', { class: 'empty' }, t('none'))
        : incidents.map((i) => {
            const orders = this.store.ordersOf(i.id);
            const li = h(
              'li',
              {
                class: this.store.selectedIncident === i.id ? 'selected' : '',
                'data-incident': i.id,
                tabindex: 0,
                onclick: () => this.store.select(i.id),
                onkeydown: (e: Event) => {
                  if ((e as KeyboardEvent).key === 'Enter') this.store.select(i.id);
                },
              },
              h('span', { class: 'prio' }, `P${i.priority}`),
              h('span', { class: 'kind' }, `#${i.id} ${i.kind}`),
              h('span', { class: 'addr' }, i.address ?? ''),
              h('span', { class: 'badge' }, code(i.status)),
              h('span', { class: 'orders-mini' }, orders.map((o) => `${o.call_sign}:${code(o.state)}`).join(' ')),
              h('span', { class: 'age' }, elapsed(Date.now() - i.created_at_ms)),
            );
            (li.querySelector('.prio') as HTMLElement).style.background = priorityColour(i.priority);
            return li;
          }),
    );
  }
}
