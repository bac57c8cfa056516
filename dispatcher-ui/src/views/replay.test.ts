import { describe, expect, it } from 'vitest';

import { setLang } from '../i18n';
import { positionAt } from './replay';
import { actorName, milestones, summarise } from './timeline';
import type { Order, TimelineEvent } from '../types';

describe('replay', () => {
  const track = [
    { lat: 60.0, lon: 24.0, at_ms: 1000 },
    { lat: 60.2, lon: 24.4, at_ms: 3000 },
    { lat: 60.2, lon: 24.4, at_ms: 3000 },
    { lat: 61.0, lon: 25.0, at_ms: 5000 },
  ];

  it('places a unit on its track in proportion to the time between fixes', () => {
    expect(positionAt(track, 0)).toEqual([24.0, 60.0]);
    expect(positionAt(track, 1000)).toEqual([24.0, 60.0]);
    const [lon, lat] = positionAt(track, 2000) as [number, number];
    expect(lon).toBeCloseTo(24.2, 9);
    expect(lat).toBeCloseTo(60.1, 9);
    expect(positionAt(track, 3000)).toEqual([24.4, 60.2]);
    expect(positionAt(track, 9000)).toEqual([25.0, 61.0]);
    expect(positionAt([], 2000)).toBeNull();
  });
});

describe('report', () => {
  const order = {
    id: 7, incident_id: 5, unit_id: 3, call_sign: 'P-3', device_id: 21, state: 'completed',
    created_at_ms: 100, delivered_at_ms: 200, acknowledged_at_ms: 300, decided_at_ms: 400,
    decline_reason: null, completed_at_ms: 900,
  } as Order;
  const event = (kind: string, at_ms: number, actor = 'device:21', order_id: number | null = 7): TimelineEvent => ({
    id: at_ms, at_ms, at: '', kind, actor, incident_id: 5, unit_id: 3, order_id, detail: {},
  });

  it('names who acted: the operator, the unit of a tablet, the system', () => {
    expect(actorName(event('order_queued', 1, 'operator:kim'), [order])).toBe('kim');
    expect(actorName(event('order_accepted', 1), [order])).toBe('P-3');
    expect(actorName(event('order_accepted', 1, 'device:99'), [order])).toContain('#99');
    setLang('ko');
    expect(actorName(event('order_escalated', 1, 'system'), [order])).toBe('시스템');
    setLang('en');
  });

  it('gives every milestone of an order, the status reports made under it included', () => {
    const events = [event('unit_en_route', 500), event('unit_on_scene', 700), event('unit_on_scene', 800, 'device:21', 8)];
    expect(milestones(order, events)).toEqual({
      queued_at: 100, delivered_at: 200, acknowledged_at: 300, decided_at: 400,
      en_route_at: 500, on_scene_at: 700, ended_at: 900,
    });
    expect(milestones({ ...order, delivered_at_ms: null, completed_at_ms: null }, []).ended_at).toBeNull();
  });
});

describe('timeline in words', () => {
  it('labels fields, translates codes, joins the place and leaves out internal ids', () => {
    setLang('en');
    const e = (detail: Record<string, unknown>): TimelineEvent => ({
      id: 1, at_ms: 1, at: '', kind: 'incident_created', actor: 'operator:kim', incident_id: 1, unit_id: null, order_id: null, detail,
    });
    const created = summarise(e({ kind: 'burglary', priority: 1, lat: 60.1686722, lon: 24.9419347, required_capabilities: [] }));
    expect(created).toBe('Type: burglary · Priority: P1 · Location: 60.16867, 24.94193');
    expect(summarise(e({ call_sign: 'P-3', device_id: 21, seq: 4 }))).toBe('Call sign: P-3');
    expect(summarise(e({ entry_id: 2, text: 'Suspect left' }))).toBe('“Suspect left”');
    expect(summarise(e({ state: 'accepted', reason: 'too_far' }))).toBe('Status: accepted · reason: too far away');
  });
});
