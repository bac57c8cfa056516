import { describe, expect, it } from 'vitest';

import { Store, TRAIL_MS } from './store';
import type { Incident, Order, TimelineEvent, Unit } from './types';

const unit = (id: number, status = 'available'): Unit => ({
  id,
  call_sign: `P-${id}`,
  kind: 'patrol_car',
  capabilities: ['patrol'],
  home_station: null,
  status,
  device_id: id,
  position: { lat: 60.17, lon: 24.94, accuracy_m: 5, fix_time_ms: 1000, received_ms: 1000 },
  link_lost_at_ms: null,
  disabled_at_ms: null,
});
const incident = (id: number, status = 'open', priority = 2, created = 0): Incident => ({
  id,
  kind: 'burglary',
  priority,
  status,
  lat: 60.17,
  lon: 24.94,
  address: null,
  caller: null,
  callback: null,
  notes: null,
  required_capabilities: [],
  phase: status === 'closed' ? 'closed' : 'pending',
  created_at_ms: created,
  updated_at_ms: created,
  closed_at_ms: null,
  disposition: null,
  emergency_unit_id: null,
});
const order = (id: number, incidentId: number, state: string): Order => ({
  id,
  incident_id: incidentId,
  unit_id: 1,
  call_sign: 'P-1',
  device_id: 1,
  state,
  created_at_ms: 0,
  delivered_at_ms: null,
  decided_at_ms: null,
  decline_reason: null,
  completed_at_ms: null,
});
const event = (id: number, kind: string, extra: Partial<TimelineEvent> = {}): TimelineEvent => ({
  id,
  at_ms: id * 1000,
  at: '',
  kind,
  actor: 'operator:admin',
  incident_id: null,
  unit_id: null,
  order_id: null,
  detail: {},
  ...extra,
});

function snapshot(s: Store) {
  s.apply({
    type: 'snapshot',
    cursor: 10,
    server_time_ms: 0,
    operator: { username: 'admin', role: 'admin' },
    units: [unit(1)],
    incidents: [incident(5)],
    orders: [order(7, 5, 'queued')],
  });
}

describe('Store', () => {
  it('starts from a snapshot and applies deltas carrying whole objects', () => {
    const s = new Store();
    snapshot(s);
    expect(s.me?.role).toBe('admin');
    expect(s.units.get(1)?.call_sign).toBe('P-1');
    expect(s.ordersOf(5).map((o) => o.state)).toEqual(['queued']);

    s.apply({
      type: 'event',
      event: event(11, 'order_accepted', { incident_id: 5, order_id: 7, unit_id: 1 }),
      incident: incident(5, 'dispatched'),
      orders: [order(7, 5, 'accepted')],
      unit: unit(1, 'assigned'),
    });
    expect(s.cursor).toBe(11);
    expect(s.incidents.get(5)?.status).toBe('dispatched');
    expect(s.orders.get(7)?.state).toBe('accepted');
    expect(s.units.get(1)?.status).toBe('assigned');
    expect(s.recent[0].kind).toBe('order_accepted');
  });

  it('keeps what the live channel brought over the later answer of the creating request', () => {
    const s = new Store();
    snapshot(s);
    s.apply({
      type: 'event',
      event: event(11, 'order_accepted', { incident_id: 5, order_id: 8, unit_id: 1 }),
      incident: incident(5, 'dispatched'),
      orders: [order(8, 5, 'accepted')],
      unit: null,
    });
    s.learnCreated({ order: order(8, 5, 'queued') });
    expect(s.orders.get(8)?.state).toBe('accepted');
    s.learnCreated({ order: order(9, 5, 'queued') });
    expect(s.orders.get(9)?.state).toBe('queued');
  });

  it('ignores events the snapshot already holds', () => {
    const s = new Store();
    snapshot(s);
    s.apply({
      type: 'event',
      event: event(9, 'order_delivered', { incident_id: 5 }),
      incident: incident(5),
      orders: [order(7, 5, 'delivered')],
      unit: null,
    });
    expect(s.orders.get(7)?.state).toBe('queued');
    expect(s.recent).toHaveLength(0);
  });

  it('drops a closed incident and its orders', () => {
    const s = new Store();
    snapshot(s);
    s.apply({
      type: 'event',
      event: event(12, 'incident_closed', { incident_id: 5 }),
      incident: incident(5, 'closed'),
      orders: [order(7, 5, 'completed')],
      unit: null,
    });
    expect(s.incidents.has(5)).toBe(false);
    expect(s.orders.has(7)).toBe(false);
  });

  it('moves units and keeps only recent trail points', () => {
    const s = new Store();
    snapshot(s);
    s.apply({ type: 'positions', positions: [{ unit_id: 1, lat: 60.18, lon: 24.95, accuracy_m: 3, received_ms: 2000 }] });
    expect(s.units.get(1)?.position?.lat).toBe(60.18);
    expect(s.trails.get(1)).toHaveLength(2);
    s.apply({
      type: 'positions',
      positions: [{ unit_id: 1, lat: 60.19, lon: 24.96, accuracy_m: 3, received_ms: 2000 + TRAIL_MS + 1 }],
    });
    expect(s.trails.get(1)?.map((p) => p[1])).toEqual([60.19]);
  });

  it('leaves a disabled unit off the board and the map until it is enabled', () => {
    const s = new Store();
    snapshot(s);
    expect(s.units.has(1)).toBe(true);
    s.apply({ type: 'event', event: event(20, 'unit_disabled', { unit_id: 1 }), incident: null, orders: null,
      unit: { ...unit(1, 'out_of_service'), device_id: null, disabled_at_ms: 20_000 } });
    expect(s.units.has(1)).toBe(false);
    expect(s.trails.has(1)).toBe(false);
    s.apply({ type: 'positions', positions: [{ unit_id: 1, lat: 60.18, lon: 24.95, accuracy_m: 3, received_ms: 21_000 }] });
    expect(s.trails.has(1)).toBe(false);
    s.apply({ type: 'event', event: event(21, 'unit_enabled', { unit_id: 1 }), incident: null, orders: null,
      unit: { ...unit(1, 'out_of_service'), device_id: null } });
    expect(s.units.get(1)?.status).toBe('out_of_service');
  });

  it('raises an alert on an escalation and clears it when acknowledged', () => {
    const s = new Store();
    snapshot(s);
    s.apply({
      type: 'event',
      event: event(13, 'order_escalated', { incident_id: 5, order_id: 7, detail: { stage: 'no_receipt', call_sign: 'P-1' } }),
      incident: incident(5),
      orders: null,
      unit: null,
    });
    expect([...s.alerts.keys()]).toEqual([13]);
    s.apply({
      type: 'event',
      event: event(14, 'alert_acknowledged', { detail: { event_id: 13 } }),
      incident: null,
      orders: null,
      unit: null,
    });
    expect(s.alerts.size).toBe(0);
  });

  it('drops a missing-receipt alert once the order reached the tablet', () => {
    const s = new Store();
    snapshot(s);
    s.apply({
      type: 'event',
      event: event(13, 'order_escalated', { incident_id: 5, order_id: 7, detail: { stage: 'no_receipt' } }),
      incident: incident(5),
      orders: null,
      unit: null,
    });
    s.apply({
      type: 'event',
      event: event(14, 'order_escalated', { incident_id: 5, order_id: 7, detail: { stage: 'no_acknowledgement' } }),
      incident: incident(5),
      orders: null,
      unit: null,
    });
    s.apply({
      type: 'event',
      event: event(15, 'order_delivered', { incident_id: 5, order_id: 7 }),
      incident: incident(5),
      orders: [{ ...order(7, 5, 'delivered'), delivered_at_ms: 15_000 }],
      unit: null,
    });
    expect([...s.alerts.keys()]).toEqual([14]);
  });

  it('orders open incidents by priority, then age', () => {
    const s = new Store();
    s.apply({
      type: 'snapshot',
      cursor: 1,
      server_time_ms: 0,
      operator: { username: 'a', role: 'operator' },
      units: [],
      incidents: [incident(1, 'open', 3, 0), incident(2, 'open', 0, 50), incident(3, 'open', 0, 10)],
      orders: [],
    });
    expect(s.openIncidents().map((i) => i.id)).toEqual([3, 2, 1]);
  });

  it('puts incidents that need someone first, until the reason is resolved', () => {
    const s = new Store();
    s.apply({
      type: 'snapshot',
      cursor: 1,
      server_time_ms: 0,
      operator: { username: 'a', role: 'operator' },
      units: [],
      incidents: [incident(1, 'open', 0, 0), incident(2, 'open', 3, 50), incident(3, 'open', 2, 10)],
      orders: [],
    });
    const raise = (id: number, incidentId: number, reason: string, severity: string) =>
      s.apply({
        type: 'event',
        event: event(id, 'attention_raised', {
          incident_id: incidentId,
          detail: { reason, severity, since_ms: 5 },
        }),
        incident: null,
        orders: null,
        unit: null,
      });
    raise(2, 3, 'all_cleared', 'notice');
    raise(3, 2, 'order_unreplaced', 'severe');
    expect(s.openIncidents().map((i) => i.id)).toEqual([2, 3, 1]);
    expect(s.attentionOf(2).map((a) => a.reason)).toEqual(['order_unreplaced']);
    expect([...s.alerts.keys()]).toEqual([2, 3]);

    // Taken by an operator: still first among the rest, after untaken severe ones.
    raise(4, 1, 'dispatch_overdue', 'severe');
    s.apply({
      type: 'event',
      event: event(5, 'alert_acknowledged', { actor: 'operator:kim', detail: { alert_event_id: 3 } }),
      incident: null,
      orders: null,
      unit: null,
    });
    expect(s.attention.get(3)?.acknowledged_by).toBe('kim');
    expect(s.openIncidents().map((i) => i.id)).toEqual([1, 2, 3]);

    s.apply({
      type: 'event',
      event: event(6, 'attention_resolved', { incident_id: 1, detail: { alert_event_id: 4 } }),
      incident: null,
      orders: null,
      unit: null,
    });
    expect(s.attention.has(4)).toBe(false);
    expect(s.alerts.has(4)).toBe(false);
    expect(s.openIncidents().map((i) => i.id)).toEqual([2, 3, 1]);
  });

  it('batches change notifications', async () => {
    const s = new Store();
    const seen: string[][] = [];
    s.subscribe((what) => seen.push([...what].sort()));
    snapshot(s);
    await Promise.resolve();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toContain('incidents');
  });
});
