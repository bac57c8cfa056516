//! Shapes of the server's JSON, as the console uses them.

export type Role = 'operator' | 'supervisor' | 'admin';

export interface Position {
  lat: number;
  lon: number;
  accuracy_m: number | null;
  fix_time_ms: number;
  received_ms: number;
}

export interface Unit {
  id: number;
  call_sign: string;
  kind: string;
  capabilities: string[];
  home_station: string | null;
  status: string;
  device_id: number | null;
  position: Position | null;
  /** Since when its tablet has had no link (past the server's `link_lost_secs`). */
  link_lost_at_ms: number | null;
  /** Since when an admin has taken it out of the fleet: not shown on the board or the map. */
  disabled_at_ms: number | null;
}

export interface Incident {
  id: number;
  kind: string;
  priority: number;
  status: string;
  lat: number;
  lon: number;
  address: string | null;
  caller: string | null;
  callback: string | null;
  notes: string | null;
  required_capabilities: string[];
  /** Where the response stands: pending, dispatched, en_route, on_scene, cleared, closed. */
  phase: string;
  created_at_ms: number;
  updated_at_ms: number;
  closed_at_ms: number | null;
  disposition: string | null;
  /** For an officer's emergency: the unit in danger (never recommended for it). */
  emergency_unit_id: number | null;
}

/** A line of narrative or another caller, added after the incident was created. */
export interface IncidentEntry {
  id: number;
  kind: 'narrative' | 'caller';
  author: string;
  at_ms: number;
  text?: string;
  caller?: string;
  callback?: string;
}

/** What the agency knows about a place: a point with a radius, or a polygon. */
export interface Premise {
  id: number;
  label: string;
  text: string;
  severity: 'info' | 'caution' | 'danger';
  lat: number | null;
  lon: number | null;
  radius_m: number | null;
  polygon: [number, number][] | null;
  expires_at_ms: number | null;
  created_at_ms: number;
}

/** An earlier incident a new call may be about. */
export interface PossibleDuplicate {
  incident: Incident;
  distance_m: number;
  same_address: boolean;
}

export interface Order {
  id: number;
  incident_id: number;
  unit_id: number;
  call_sign: string;
  device_id: number;
  state: string;
  created_at_ms: number;
  delivered_at_ms: number | null;
  displayed_at_ms?: number | null;
  acknowledged_at_ms?: number | null;
  decided_at_ms: number | null;
  /** busy, too_far, vehicle_problem or other (then `decline_detail` says what). */
  decline_reason: string | null;
  decline_detail?: string | null;
  completed_at_ms: number | null;
  ended_at_ms?: number | null;
  end_reason?: string | null;
}

export interface TimelineEvent {
  id: number;
  at_ms: number;
  at: string;
  kind: string;
  actor: string;
  incident_id: number | null;
  unit_id: number | null;
  order_id: number | null;
  detail: Record<string, unknown>;
  /** For an officer's action: when the server received it (`at_ms` is when it was tapped). */
  received_at_ms?: number;
}

export interface PositionChange {
  unit_id: number;
  lat: number;
  lon: number;
  accuracy_m: number | null;
  received_ms: number;
}

export interface Alert {
  event_id: number;
  at_ms: number;
  kind: string;
  incident_id: number | null;
  order_id: number | null;
  unit_id: number | null;
  detail: Record<string, unknown>;
}

/** Why an incident needs an operator now (`GET /api/attention`, `attention_raised`). */
export type AttentionReason =
  | 'order_unreplaced'
  | 'dispatch_overdue'
  | 'welfare_check'
  | 'all_cleared'
  | 'unread_text';

export interface Attention {
  incident_id: number | null;
  reason: AttentionReason;
  severity: 'severe' | 'notice';
  since_ms: number;
  target_ms: number | null;
  unit_id: number | null;
  order_id: number | null;
  /** The `attention_raised` event: the alert an operator acknowledges. */
  alert_event_id: number;
  acknowledged_by: string | null;
  detail: Record<string, unknown>;
}

export type LiveMessage =
  | {
      type: 'snapshot';
      cursor: number;
      server_time_ms: number;
      operator: { username: string; role: Role };
      units: Unit[];
      incidents: Incident[];
      orders: Order[];
    }
  | {
      type: 'event';
      event: TimelineEvent;
      incident: Incident | null;
      orders: Order[] | null;
      unit: Unit | null;
    }
  | { type: 'positions'; positions: PositionChange[] }
  | { type: 'heartbeat'; server_time_ms: number };

export interface Candidate {
  unit_id: number;
  call_sign: string;
  distance_m: number;
  eta_s: number;
  eta_source: string;
  fix_age_s: number;
  accuracy_m: number | null;
}

export interface Recommendation {
  incident_id: number;
  required_capabilities: string[];
  plan: { units: number; capabilities: string[] };
  proposed: number[];
  candidates: Candidate[];
}
