//! The console's one store: the fleet's units (disabled ones left out), open incidents, orders, trails, alerts and what needs
//! attention, kept current by the live channel (a snapshot, then deltas). Views subscribe and
//! re-render on change.

import type {
  Alert,
  Attention,
  Incident,
  LiveMessage,
  Order,
  PositionChange,
  Role,
  TimelineEvent,
  Unit,
} from './types';

/** How much of each unit's recent trail the map keeps. */
export const TRAIL_MS = 10 * 60 * 1000;
/** Recent events kept for the activity feed. */
const RECENT_EVENTS = 200;

export type Connection = 'connecting' | 'online' | 'offline';

/** Whether the unit is in the fleet: the board, the map and the lists leave disabled units out. */
export function inFleet(unit: Unit): boolean {
  return !unit.disabled_at_ms;
}

export class Store {
  units = new Map<number, Unit>();
  incidents = new Map<number, Incident>();
  orders = new Map<number, Order>();
  trails = new Map<number, [number, number, number][]>(); // [lon, lat, at_ms]
  alerts = new Map<number, Alert>();
  /** Open reasons for attention, by their alert's event id. */
  attention = new Map<number, Attention>();
  recent: TimelineEvent[] = [];
  cursor = 0;
  connection: Connection = 'connecting';
  me: { username: string; role: Role } | null = null;
  selectedIncident: number | null = null;
  private listeners = new Set<(what: Set<string>) => void>();
  private pending = new Set<string>();
  private scheduled = false;

  /** Calls `f` after changes, with the names of what changed (batched per microtask). */
  subscribe(f: (what: Set<string>) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  changed(what: string): void {
    this.pending.add(what);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      const batch = this.pending;
      this.pending = new Set();
      this.listeners.forEach((f) => f(batch));
    });
  }

  setConnection(c: Connection): void {
    if (this.connection !== c) {
      this.connection = c;
      this.changed('connection');
    }
  }

  /** Applies one message of the live channel. */
  apply(msg: LiveMessage): void {
    switch (msg.type) {
      case 'snapshot':
        this.applySnapshot(msg);
        break;
      case 'event':
        this.applyEvent(msg.event, msg.incident, msg.orders, msg.unit);
        break;
      case 'positions':
        this.applyPositions(msg.positions);
        break;
      case 'heartbeat':
        break;
    }
  }

  private applySnapshot(msg: Extract<LiveMessage, { type: 'snapshot' }>): void {
    this.me = msg.operator;
    this.cursor = msg.cursor;
    this.units = new Map(msg.units.filter(inFleet).map((u) => [u.id, u]));
    this.incidents = new Map(msg.incidents.map((i) => [i.id, i]));
    this.orders = new Map(msg.orders.map((o) => [o.id, o]));
    for (const u of this.units.values()) {
      if (u.position) this.addTrailPoint(u.id, u.position.lon, u.position.lat, u.position.received_ms);
    }
    ['units', 'incidents', 'orders', 'trails', 'me'].forEach((w) => this.changed(w));
  }

  private applyEvent(
    event: TimelineEvent,
    incident: Incident | null,
    orders: Order[] | null,
    unit: Unit | null,
  ): void {
    if (event.id <= this.cursor) return; // already in the snapshot
    this.cursor = event.id;
    this.recent.unshift(event);
    this.recent.length = Math.min(this.recent.length, RECENT_EVENTS);
    this.changed('events');
    if (incident) {
      if (incident.status === 'closed') {
        this.incidents.delete(incident.id);
        for (const [id, o] of this.orders) if (o.incident_id === incident.id) this.orders.delete(id);
      } else {
        this.incidents.set(incident.id, incident);
      }
      this.changed('incidents');
    }
    if (orders && (!incident || incident.status !== 'closed')) {
      for (const o of orders) this.orders.set(o.id, o);
      this.changed('orders');
    }
    // A missing receipt stops being news once the order reached the tablet.
    for (const o of orders ?? []) {
      if (o.delivered_at_ms === null) continue;
      for (const [id, a] of this.alerts) {
        if (a.kind === 'order_escalated' && a.order_id === o.id && (a.detail as { stage?: string }).stage === 'no_receipt') {
          this.alerts.delete(id);
          this.changed('alerts');
        }
      }
    }
    if (unit) {
      if (inFleet(unit)) {
        this.units.set(unit.id, unit);
      } else {
        this.units.delete(unit.id);
        this.trails.delete(unit.id);
        this.changed('trails');
      }
      this.changed('units');
    }
    if (event.kind === 'attention_raised') {
      const d = event.detail as Partial<Attention> & { reason: Attention['reason'] };
      this.attention.set(event.id, {
        incident_id: event.incident_id,
        reason: d.reason,
        severity: d.severity ?? 'severe',
        since_ms: d.since_ms ?? event.at_ms,
        target_ms: d.target_ms ?? null,
        unit_id: event.unit_id,
        order_id: event.order_id,
        alert_event_id: event.id,
        acknowledged_by: null,
        detail: event.detail,
      });
      this.changed('attention');
    }
    if (event.kind === 'attention_resolved') {
      const raised = (event.detail as { alert_event_id?: number }).alert_event_id;
      if (raised !== undefined) {
        if (this.attention.delete(raised)) this.changed('attention');
        if (this.alerts.delete(raised)) this.changed('alerts');
      }
    }
    if (event.kind === 'order_escalated' || event.kind === 'attention_raised' || event.kind === 'officer_emergency') {
      this.alerts.set(event.id, {
        event_id: event.id,
        at_ms: event.at_ms,
        kind: event.kind,
        incident_id: event.incident_id,
        order_id: event.order_id,
        unit_id: event.unit_id,
        detail: event.detail,
      });
      this.changed('alerts');
    }
    if (event.kind === 'alert_acknowledged') {
      const d = event.detail as { event_id?: number; alert_event_id?: number };
      const acked = d.event_id ?? d.alert_event_id;
      if (acked !== undefined && this.alerts.delete(acked)) this.changed('alerts');
      const taken = acked !== undefined ? this.attention.get(acked) : undefined;
      if (taken) {
        taken.acknowledged_by = event.actor.replace(/^operator:/, '');
        this.changed('attention');
      }
    }
  }

  private applyPositions(positions: PositionChange[]): void {
    for (const p of positions) {
      const u = this.units.get(p.unit_id);
      if (!u) continue; // not in the fleet (disabled)
      u.position = {
        lat: p.lat,
        lon: p.lon,
        accuracy_m: p.accuracy_m,
        fix_time_ms: u.position?.fix_time_ms ?? p.received_ms,
        received_ms: p.received_ms,
      };
      this.addTrailPoint(p.unit_id, p.lon, p.lat, p.received_ms);
    }
    this.changed('units');
    this.changed('trails');
  }

  /** Adds a point to a unit's trail and forgets points older than [`TRAIL_MS`]. */
  addTrailPoint(unitId: number, lon: number, lat: number, at: number): void {
    const trail = this.trails.get(unitId) ?? [];
    if (!trail.some((p) => p[2] === at)) {
      trail.push([lon, lat, at]);
      trail.sort((a, b) => a[2] - b[2]);
    }
    const newest = trail[trail.length - 1][2];
    at = Math.max(at, newest);
    while (trail.length && trail[0][2] < at - TRAIL_MS) trail.shift();
    this.trails.set(unitId, trail);
  }

  /** Replaces the alert list (from `GET /api/alerts`). */
  setAlerts(list: Alert[]): void {
    this.alerts = new Map(list.map((a) => [a.event_id, a]));
    this.changed('alerts');
  }

  /** Replaces what needs attention (from `GET /api/attention`). */
  setAttention(list: Attention[]): void {
    this.attention = new Map(list.map((a) => [a.alert_event_id, a]));
    this.changed('attention');
  }

  /** Why an incident needs attention, severe first. */
  attentionOf(incidentId: number): Attention[] {
    return [...this.attention.values()]
      .filter((a) => a.incident_id === incidentId)
      .sort((a, b) => attentionRank([a]) - attentionRank([b]) || a.since_ms - b.since_ms);
  }

  removeAlert(eventId: number): void {
    if (this.alerts.delete(eventId)) this.changed('alerts');
  }

  select(incidentId: number | null): void {
    this.selectedIncident = incidentId;
    this.changed('selection');
  }

  /**
   * Takes an order or incident from the answer of the request that created it, unless the live
   * channel brought it already: the server pushes every change after its commit, before it
   * answers, so what the channel brought is at least as new as that answer.
   */
  learnCreated(what: { order?: Order; incident?: Incident }): void {
    if (what.order && !this.orders.has(what.order.id)) {
      this.orders.set(what.order.id, what.order);
      this.changed('orders');
    }
    if (what.incident && !this.incidents.has(what.incident.id)) {
      this.incidents.set(what.incident.id, what.incident);
      this.changed('incidents');
    }
  }

  /** Orders of an incident, newest first. */
  ordersOf(incidentId: number): Order[] {
    return [...this.orders.values()]
      .filter((o) => o.incident_id === incidentId)
      .sort((a, b) => b.id - a.id);
  }

  /**
   * Open incidents in the order they need someone: by attention (a severe reason nobody has
   * taken first, then severe, then notices, then none), then priority (lowest number first),
   * then age (oldest first).
   */
  openIncidents(): Incident[] {
    const rank = new Map([...this.incidents.keys()].map((id) => [id, attentionRank(this.attentionOf(id))]));
    return [...this.incidents.values()].sort(
      (a, b) =>
        (rank.get(a.id) ?? 3) - (rank.get(b.id) ?? 3) ||
        a.priority - b.priority ||
        a.created_at_ms - b.created_at_ms,
    );
  }
}

/** 0: a severe reason nobody acknowledged; 1: severe; 2: a notice; 3: nothing. */
export function attentionRank(reasons: Attention[]): number {
  if (reasons.some((a) => a.severity === 'severe' && !a.acknowledged_by)) return 0;
  if (reasons.some((a) => a.severity === 'severe')) return 1;
  return reasons.length > 0 ? 2 : 3;
}

export const store = new Store();
