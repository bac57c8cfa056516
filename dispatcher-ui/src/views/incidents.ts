//! The open-incident queue on the console, in the order incidents need someone: by attention,
//! then priority, then age. Each row says why it needs attention, for how long against its
//! target, and offers the action that answers it in one click.

import { create, describe, get, post } from '../api';
import { reasonText } from '../alerts';
import { h, replace } from '../dom';
import { code, t } from '../i18n';
import { elapsed, priorityColour } from '../format';
import { attentionRank, type Store } from '../store';
import type { Attention, Incident, Order, Recommendation } from '../types';

export class IncidentQueue {
  el = h('section', { class: 'queue', 'data-testid': 'incident-queue' });
  private list = h('ul', {});
  private status = h('div', { class: 'queue-status', role: 'status' });

  constructor(private store: Store) {
    replace(this.el, h('h2', {}, t('open_incidents')), this.status, this.list);
    store.subscribe((what) => {
      if (what.has('incidents') || what.has('selection') || what.has('orders') || what.has('attention')) {
        this.render();
      }
    });
    setInterval(() => this.render(), 1000);
  }

  render(): void {
    const incidents = this.store.openIncidents();
    replace(
      this.list,
      incidents.length === 0 ? h('li', { class: 'empty' }, t('none')) : incidents.map((i) => this.row(i)),
    );
  }

  private row(i: Incident): HTMLElement {
    const orders = this.store.ordersOf(i.id);
    const reasons = this.store.attentionOf(i.id);
    const rank = attentionRank(reasons);
    const li = h(
      'li',
      {
        class: `${this.store.selectedIncident === i.id ? 'selected' : ''} attention-${rank}`,
        'data-incident': i.id,
        'data-attention': reasons.map((a) => a.reason).join(' '),
        tabindex: 0,
        onclick: () => this.store.select(i.id),
        onkeydown: (e: Event) => {
          if ((e as KeyboardEvent).key === 'Enter') this.store.select(i.id);
        },
      },
      h('span', { class: 'prio' }, `P${i.priority}`),
      h('span', { class: 'kind' }, `#${i.id} ${code(i.kind)}`),
      h('span', { class: 'addr' }, i.address ?? ''),
      h('span', { class: 'badge' }, code(i.phase)),
      h('span', { class: 'orders-mini' }, orders.map((o) => `${o.call_sign}:${code(o.state)}`).join(' ')),
      h('span', { class: 'age' }, elapsed(Date.now() - i.created_at_ms)),
      reasons.length > 0 ? h('div', { class: 'why' }, reasons.map((a) => this.reason(i, a))) : null,
    );
    (li.querySelector('.prio') as HTMLElement).style.background = priorityColour(i.priority);
    return li;
  }

  /** One reason: what it is, how long against its target, who took it, and its action. */
  private reason(i: Incident, a: Attention): HTMLElement {
    const waited = Date.now() - a.since_ms;
    const clock = a.target_ms !== null ? `${elapsed(waited)} / ${elapsed(a.target_ms)}` : elapsed(waited);
    const d = a.detail as { call_sign?: string; why?: string | null; text?: string };
    return h(
      'span',
      { class: `reason ${a.severity}`, 'data-reason': a.reason, title: d.text ?? (d.why ? code(d.why) : '') },
      h('strong', {}, reasonText(a.reason)),
      d.call_sign ? ` ${d.call_sign}` : '',
      ` ${clock}`,
      a.acknowledged_by ? h('em', {}, ` ✓ ${a.acknowledged_by}`) : null,
      this.action(i, a),
    );
  }

  private action(i: Incident, a: Attention): HTMLElement {
    const act = (label: string, run: () => Promise<unknown>) =>
      h(
        'button',
        {
          class: 'act',
          'data-action': a.reason,
          onclick: async (ev: Event) => {
            ev.stopPropagation();
            const btn = ev.currentTarget as HTMLButtonElement;
            btn.disabled = true;
            try {
              await run();
              this.status.textContent = '';
            } catch (e) {
              btn.disabled = false;
              this.status.textContent = `${t('error')}: ${describe(e)}`;
            }
          },
        },
        label,
      );
    switch (a.reason) {
      case 'dispatch_overdue':
      case 'order_unreplaced':
        return act(t('dispatch_nearest'), () => this.dispatchNearest(i.id));
      case 'all_cleared':
        return act(t('close_incident'), () => post(`/api/incidents/${i.id}/close`, {}));
      case 'unread_text':
        return act(t('mark_read'), () => post(`/api/units/${a.unit_id}/messages/read`));
      case 'welfare_check':
        return act(t('officer_ok'), () => post(`/api/alerts/${a.alert_event_id}/acknowledge`));
    }
  }

  /** Orders the first proposed unit (or the nearest available one) to the incident. */
  private async dispatchNearest(incidentId: number): Promise<void> {
    const rec = await get<Recommendation>(`/api/incidents/${incidentId}/recommendations?count=5`);
    const unit = rec.proposed[0] ?? rec.candidates[0]?.unit_id;
    if (unit === undefined) throw new Error(t('no_units'));
    const order = await create<Order>(`/api/incidents/${incidentId}/assignments`, {
      unit_id: unit,
    });
    this.store.learnCreated({ order });
  }
}
