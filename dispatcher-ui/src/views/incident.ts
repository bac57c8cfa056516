//! The dispatch panel of one incident: recommendations with ETA and distance, one-click
//! dispatch of the response plan, and every order's delivery state with its elapsed time.

import { create, describe, get, post } from '../api';
import { h, replace, say } from '../dom';
import { code, t } from '../i18n';
import { awaitingAcknowledgement, distance, elapsed, eta, finished, priorityColour } from '../format';
import type { Store } from '../store';
import { IncidentDetails } from './incident_details';
import type { Order, Recommendation } from '../types';

/** When an order entered its current state, as well as the server tells us. */
export function stateSince(o: Order): number {
  switch (o.state) {
    case 'delivered':
      return o.delivered_at_ms ?? o.created_at_ms;
    case 'displayed':
      return o.displayed_at_ms ?? o.delivered_at_ms ?? o.created_at_ms;
    case 'acknowledged':
      return o.acknowledged_at_ms ?? o.delivered_at_ms ?? o.created_at_ms;
    case 'accepted':
    case 'declined':
      return o.decided_at_ms ?? o.created_at_ms;
    case 'completed':
      return o.completed_at_ms ?? o.created_at_ms;
    case 'cancelled':
    case 'expired':
      return o.ended_at_ms ?? o.decided_at_ms ?? o.created_at_ms;
    default:
      return o.created_at_ms;
  }
}

export class IncidentPanel {
  el = h('section', { class: 'incident-panel', 'data-testid': 'incident-panel' });
  private recommendation: Recommendation | null = null;
  private recFor: number | null = null;
  private message = h('div', { class: 'form-status', role: 'status' });
  private ordersEl = h('div', { class: 'orders', 'data-testid': 'orders' });
  /** Offset of the server clock from ours (server − local), for elapsed times. */
  clockOffset = 0;
  /** Incidents whose plan dispatch is on its way: a second press (Alt+D twice) does nothing. */
  private dispatching = new Set<number>();
  private details: IncidentDetails;
  /** The incident as last drawn: a change of another incident does not redraw this one. */
  private shown: unknown = null;

  constructor(
    private store: Store,
    private openTimeline: (incidentId: number) => void,
  ) {
    this.details = new IncidentDetails(store);
    store.subscribe((what) => {
      if (what.has('selection')) {
        this.recommendation = null;
        say(this.message, '', false);
        this.render();
        void this.loadRecommendations();
      } else if (what.has('incidents') && this.shown !== this.selected()) {
        this.render();
      } else if (what.has('orders')) {
        this.renderOrders();
      }
      if (what.has('units') && what.has('events')) void this.loadRecommendations();
    });
    setInterval(() => this.renderOrders(), 1000);
    this.render();
  }

  async loadRecommendations(): Promise<void> {
    const id = this.store.selectedIncident;
    if (id === null || !this.store.incidents.has(id)) return;
    try {
      const rec = await get<Recommendation>(`/api/incidents/${id}/recommendations?count=5`);
      if (this.store.selectedIncident !== id) return;
      this.recommendation = rec;
      this.recFor = id;
      this.renderRecommendations();
    } catch (e) {
      say(this.message, describe(e), true);
    }
  }

  /** Dispatches the response plan of the selected incident (Alt+D). */
  async dispatchPlan(): Promise<void> {
    const id = this.store.selectedIncident;
    if (id === null || this.dispatching.has(id)) return;
    this.dispatching.add(id);
    this.renderPlanButton();
    try {
      const r = await create<{ orders: Order[]; failed: { unit_id: number; error: string }[] }>(
        `/api/incidents/${id}/dispatch-plan`,
      );
      r.orders.forEach((order) => this.store.learnCreated({ order }));
      const failed = r.failed.map((f) => f.error).join('; ');
      say(
        this.message,
        `${t('dispatch_unit')}: ${r.orders.map((o) => o.call_sign).join(', ')}${failed ? ` · ${failed}` : ''}`,
        failed !== '',
      );
    } catch (e) {
      say(this.message, `${t('error')}: ${describe(e)}`, true);
    } finally {
      this.dispatching.delete(id);
      this.renderPlanButton();
    }
    void this.loadRecommendations();
  }

  /** The plan button is disabled while the selected incident's plan dispatch is on its way. */
  private renderPlanButton(): void {
    const button = this.el.querySelector<HTMLButtonElement>('[data-testid=dispatch-plan]');
    const id = this.store.selectedIncident;
    if (button) button.disabled = id !== null && this.dispatching.has(id);
  }

  private async dispatchUnit(unitId: number): Promise<void> {
    const id = this.store.selectedIncident;
    if (id === null) return;
    try {
      const o = await create<Order>(`/api/incidents/${id}/assignments`, { unit_id: unitId });
      this.store.learnCreated({ order: o });
      say(this.message, `${t('dispatch_unit')}: ${o.call_sign}`, false);
    } catch (e) {
      say(this.message, `${t('error')}: ${describe(e)}`, true);
    }
    void this.loadRecommendations();
  }

  private selected() {
    const id = this.store.selectedIncident;
    return id === null ? undefined : this.store.incidents.get(id);
  }

  render(): void {
    const incident = this.selected();
    this.shown = incident;
    const typing = this.details.typing();
    if (!incident) {
      replace(this.el);
      this.el.hidden = true;
      return;
    }
    this.el.hidden = false;
    const disposition = h('input', { placeholder: t('disposition'), 'aria-label': t('disposition') });
    replace(
      this.el,
      h(
        'header',
        {},
        h('span', { class: 'prio', 'data-p': incident.priority }, `P${incident.priority}`),
        h('h2', {}, `#${incident.id} ${code(incident.kind)}`),
        h('span', { class: 'badge', 'data-testid': 'incident-phase' }, code(incident.phase)),
      ),
      h('div', { class: 'addr' }, incident.address ?? `${incident.lat.toFixed(5)}, ${incident.lon.toFixed(5)}`),
      this.details.render(incident),
      h('h3', {}, t('recommendations')),
      h('div', { class: 'recs', 'data-testid': 'recommendations' }),
      h(
        'button',
        {
          class: 'primary big',
          'data-testid': 'dispatch-plan',
          title: 'Alt+D',
          onclick: () => void this.dispatchPlan(),
        },
        `${t('dispatch_plan')} (Alt+D)`,
      ),
      this.message,
      h('h3', {}, t('orders')),
      this.ordersEl,
      h(
        'div',
        { class: 'row actions' },
        h(
          'button',
          { 'data-testid': 'open-timeline', onclick: () => this.openTimeline(incident.id) },
          t('timeline'),
        ),
        disposition,
        h(
          'button',
          {
            onclick: async () => {
              try {
                await post(`/api/incidents/${incident.id}/close`, {
                  disposition: disposition.value.trim() || undefined,
                });
              } catch (e) {
                say(this.message, describe(e), true);
              }
            },
          },
          t('close_incident'),
        ),
      ),
    );
    const p = this.el.querySelector('.prio') as HTMLElement;
    p.style.background = priorityColour(incident.priority);
    this.renderRecommendations();
    this.renderOrders();
    this.renderPlanButton();
    if (typing) this.details.resumeTyping();
  }

  private renderRecommendations(): void {
    const box = this.el.querySelector('.recs');
    if (!box) return;
    const rec = this.recFor === this.store.selectedIncident ? this.recommendation : null;
    if (!rec) {
      replace(box, '…');
      return;
    }
    if (rec.candidates.length === 0) {
      replace(box, h('div', { class: 'empty' }, t('no_units')));
      return;
    }
    replace(
      box,
      h(
        'table',
        {},
        h('tr', {}, h('th', {}, t('call_sign')), h('th', {}, t('eta')), h('th', {}, t('distance')), h('th', {})),
        rec.candidates.map((c) =>
          h(
            'tr',
            { class: rec.proposed.includes(c.unit_id) ? 'proposed' : '', 'data-unit': c.unit_id },
            h('td', {}, c.call_sign),
            h('td', {}, eta(c.eta_s), c.eta_source === 'road' ? '' : ' ≈'),
            h('td', {}, distance(c.distance_m)),
            h(
              'td',
              {},
              h('button', { onclick: () => void this.dispatchUnit(c.unit_id) }, t('dispatch_unit')),
            ),
          ),
        ),
      ),
    );
  }

  renderOrders(): void {
    const id = this.store.selectedIncident;
    if (id === null) return;
    const orders = this.store.ordersOf(id);
    const now = Date.now() + this.clockOffset;
    replace(
      this.ordersEl,
      orders.length === 0
        ? h('div', { class: 'empty' }, t('none'))
        : orders.map((o) =>
            h(
              'div',
              {
                class: `order state-${o.state}${awaitingAcknowledgement(o.state) ? ' waiting' : ''}`,
                'data-order': o.id,
                'data-state': o.state,
              },
              h('strong', {}, o.call_sign),
              h('span', { class: 'state' }, code(o.state)),
              h('span', { class: 'elapsed', title: t('elapsed') }, elapsed(now - stateSince(o))),
              h('span', { class: 'total' }, `Σ ${elapsed((finished(o.state) ? stateSince(o) : now) - o.created_at_ms)}`),
              o.decline_reason || o.end_reason
                ? h(
                    'span',
                    { class: 'reason' },
                    o.decline_reason
                      ? [code(o.decline_reason), o.decline_detail].filter(Boolean).join(': ')
                      : (o.end_reason ?? ''),
                  )
                : null,
              finished(o.state)
                ? null
                : h(
                    'button',
                    {
                      class: 'small',
                      onclick: async () => {
                        const reason = prompt(t('cancel_reason'));
                        if (reason === null) return;
                        try {
                          await post(`/api/orders/${o.id}/cancel`, { reason });
                        } catch (e) {
                          say(this.message, `${t('error')}: ${describe(e)}`, true);
                        }
                      },
                    },
                    t('cancel_order'),
                  ),
            ),
          ),
    );
  }
}
