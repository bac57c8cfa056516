import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { alertText } from '../alerts';
import { code, missingCodes, setLang } from '../i18n';
import { Store } from '../store';
import type { Incident, Order, Unit } from '../types';
import { IncidentPanel, stateSince } from './incident';
import { enrolmentBlock, UnitForm } from './admin';
import { IntakeForm } from './intake';
import { filterIncidents } from './supervisor';
import { boardOrder } from './units';

function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('IntakeForm', () => {
  let fetchMock: ReturnType<typeof vi.fn>;
  beforeEach(() => {
    setLang('en');
    vi.useFakeTimers();
    fetchMock = vi.fn();
    vi.stubGlobal('fetch', fetchMock);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it('autocompletes an address, takes it with Enter and creates the incident', async () => {
    const picks: [number, number][] = [];
    const created: Incident[] = [];
    const form = new IntakeForm({
      showPick: (lat, lon) => picks.push([lat, lon]),
      created: (i) => created.push(i),
      joined: () => {},
    });
    document.body.replaceChildren(form.el);
    const address = form.el.querySelector('#intake-address') as HTMLInputElement;
    fetchMock.mockResolvedValueOnce(jsonResponse([{ label: 'Aleksanterinkatu 52, Helsinki', lat: 60.1686, lon: 24.9441 }]));
    address.value = 'Aleksanterinkatu 52';
    address.dispatchEvent(new Event('input'));
    await vi.advanceTimersByTimeAsync(200);
    await flush();
    expect(fetchMock.mock.calls[0][0]).toBe('/api/geocode?q=Aleksanterinkatu%2052&limit=8');
    expect(form.el.querySelectorAll('.suggestions li')).toHaveLength(1);

    fetchMock.mockResolvedValueOnce(jsonResponse([])); // nothing known at this place
    address.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    expect(address.value).toBe('Aleksanterinkatu 52, Helsinki');
    expect(picks).toEqual([[60.1686, 24.9441]]);
    expect(document.activeElement?.id).toBe('intake-kind');

    (form.el.querySelector('#intake-kind') as HTMLInputElement).value = 'burglary';
    (form.el.querySelector('#intake-priority') as HTMLSelectElement).value = '1';
    (form.el.querySelector('#intake-callback') as HTMLInputElement).value = '+358 40 1';
    fetchMock.mockResolvedValueOnce(jsonResponse([]));
    fetchMock.mockResolvedValueOnce(jsonResponse({ id: 9, kind: 'burglary' }, 201));
    form.el.dispatchEvent(new Event('submit'));
    await vi.waitFor(() => expect(created).toHaveLength(1));
    expect(fetchMock.mock.calls[1][0]).toBe('/api/premises/at?lat=60.1686&lon=24.9441');
    expect(fetchMock.mock.calls[2][0]).toBe(
      '/api/incidents/duplicates?lat=60.1686&lon=24.9441&address=Aleksanterinkatu%2052%2C%20Helsinki',
    );
    const [url, init] = fetchMock.mock.calls[3];
    expect(url).toBe('/api/incidents');
    expect(JSON.parse(init.body)).toMatchObject({
      kind: 'burglary', priority: 1, lat: 60.1686, lon: 24.9441, address: 'Aleksanterinkatu 52, Helsinki', callback: '+358 40 1',
    });
    expect(created.map((i) => i.id)).toEqual([9]);
    // The next call starts from an empty form: nothing of this one carries over.
    for (const id of ['intake-address', 'intake-kind', 'intake-priority', 'intake-callback', 'intake-caller']) {
      expect((form.el.querySelector(`#${id}`) as HTMLInputElement).value, id).toBe('');
    }
  });

  it('Enter on text typed after the last suggestions takes the answer for that text, not for its prefix', async () => {
    const picks: [number, number][] = [];
    const form = new IntakeForm({ showPick: (lat, lon) => picks.push([lat, lon]), created: () => {}, joined: () => {} });
    document.body.replaceChildren(form.el);
    const address = form.el.querySelector('#intake-address') as HTMLInputElement;
    fetchMock.mockResolvedValueOnce(jsonResponse([{ label: 'Aleksis Kiven katu 1, Helsinki', lat: 60.19, lon: 24.95 }]));
    address.value = 'Aleks';
    address.dispatchEvent(new Event('input'));
    await vi.advanceTimersByTimeAsync(200);
    await flush();
    expect(form.el.querySelector('.suggestions li')?.textContent).toBe('Aleksis Kiven katu 1, Helsinki');

    // The operator types on and presses Enter before the next suggestions arrive.
    address.value = 'Aleksanterinkatu 52';
    address.dispatchEvent(new Event('input'));
    fetchMock.mockResolvedValueOnce(jsonResponse([{ label: 'Aleksanterinkatu 52, Helsinki', lat: 60.1686, lon: 24.9441 }]));
    fetchMock.mockResolvedValueOnce(jsonResponse([])); // nothing known at this place
    address.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    await vi.waitFor(() => expect(address.value).toBe('Aleksanterinkatu 52, Helsinki'));
    expect(fetchMock.mock.calls[1][0]).toBe('/api/geocode?q=Aleksanterinkatu%2052&limit=8');
    expect(picks).toEqual([[60.1686, 24.9441]]);
    expect(document.activeElement?.id).toBe('intake-kind');
    await vi.advanceTimersByTimeAsync(200);
    expect(fetchMock).toHaveBeenCalledTimes(3); // the debounced lookup was not sent as well
  });

  it('refuses a call without a type or a priority, naming what is missing', async () => {
    const form = new IntakeForm({ showPick: () => {}, created: () => {}, joined: () => {} });
    document.body.replaceChildren(form.el);
    fetchMock.mockResolvedValueOnce(jsonResponse([]));
    fetchMock.mockResolvedValueOnce(jsonResponse({ label: 'Mannerheimintie 1', lat: 60.17, lon: 24.94 }));
    await form.pick(60.17, 24.94);
    form.el.dispatchEvent(new Event('submit'));
    await flush();
    expect(form.el.querySelector('.form-status')?.textContent).toContain('Type is required');
    (form.el.querySelector('#intake-kind') as HTMLInputElement).value = 'fire';
    form.el.dispatchEvent(new Event('submit'));
    await flush();
    expect(form.el.querySelector('.form-status')?.textContent).toContain('Priority is required');
    expect(fetchMock).toHaveBeenCalledTimes(2);
  });

  it('shows an earlier incident nearby and adds the call to it as another caller', async () => {
    const joined: number[] = [];
    const created: Incident[] = [];
    const form = new IntakeForm({ showPick: () => {}, created: (i) => created.push(i), joined: (id) => joined.push(id) });
    document.body.replaceChildren(form.el);
    fetchMock.mockResolvedValueOnce(
      jsonResponse([{ id: 2, label: 'Dog', text: 'Aggressive dog', severity: 'danger' }]),
    );
    fetchMock.mockResolvedValueOnce(jsonResponse({ label: 'Mannerheimintie 1', lat: 60.17, lon: 24.94 }));
    await form.pick(60.17, 24.94);
    await vi.waitFor(() =>
      expect(form.el.querySelector('[data-testid=intake-premises]')?.textContent).toContain('Aggressive dog'),
    );
    (form.el.querySelector('#intake-kind') as HTMLInputElement).value = 'fire';
    (form.el.querySelector('#intake-priority') as HTMLSelectElement).value = '0';
    (form.el.querySelector('#intake-caller') as HTMLInputElement).value = 'Park';
    const earlier = { id: 4, kind: 'fire', priority: 0, address: 'Mannerheimintie 1', phase: 'dispatched' };
    fetchMock.mockResolvedValueOnce(jsonResponse([{ incident: earlier, distance_m: 40, same_address: false }]));
    form.el.dispatchEvent(new Event('submit'));
    await vi.waitFor(() => expect(form.el.querySelector('[data-testid=add-caller-4]')).not.toBeNull());
    expect(created).toHaveLength(0);
    expect(form.el.querySelector('[data-testid=duplicates]')?.textContent).toContain('40 m');
    fetchMock.mockResolvedValueOnce(jsonResponse({ id: 1, kind: 'caller' }, 201));
    (form.el.querySelector('[data-testid=add-caller-4]') as HTMLButtonElement).click();
    await vi.waitFor(() => expect(joined).toEqual([4]));
    const [url, init] = fetchMock.mock.calls[3];
    expect(url).toBe('/api/incidents/4/callers');
    expect(JSON.parse(init.body)).toMatchObject({ caller: 'Park' });
    expect(created).toHaveLength(0);
    expect((form.el.querySelector('[data-testid=duplicates]') as HTMLElement).hidden).toBe(true);
    expect(form.el.querySelector('[data-testid=intake-premises]')).toBeNull();
  });

  it('refuses to create an incident without a location and shows why', async () => {
    const form = new IntakeForm({ showPick: () => {}, created: () => {}, joined: () => {} });
    document.body.replaceChildren(form.el);
    form.el.dispatchEvent(new Event('submit'));
    await flush();
    expect(fetchMock).not.toHaveBeenCalled();
    expect(form.el.querySelector('.form-status')?.textContent).toContain('No location');
  });

  it("shows the server's own error message", async () => {
    const form = new IntakeForm({ showPick: () => {}, created: () => {}, joined: () => {} });
    document.body.replaceChildren(form.el);
    fetchMock.mockResolvedValueOnce(jsonResponse([]));
    fetchMock.mockResolvedValueOnce(jsonResponse({ label: 'Mannerheimintie 1', lat: 60.17, lon: 24.94 }));
    await form.pick(60.17, 24.94);
    (form.el.querySelector('#intake-kind') as HTMLInputElement).value = 'Bad kind';
    (form.el.querySelector('#intake-priority') as HTMLSelectElement).value = '2';
    fetchMock.mockResolvedValueOnce(jsonResponse([]));
    fetchMock.mockResolvedValueOnce(
      jsonResponse({ error: { code: 'invalid_field', message: '`kind` must be a code' } }, 422),
    );
    form.el.dispatchEvent(new Event('submit'));
    await vi.waitFor(() =>
      expect(form.el.querySelector('.form-status')?.textContent).toContain('`kind` must be a code (invalid_field, 422)'),
    );
  });
});

describe('IncidentPanel', () => {
  beforeEach(() => {
    setLang('en');
    vi.stubGlobal('fetch', vi.fn().mockResolvedValue(jsonResponse({ incident_id: 1, required_capabilities: [], plan: { units: 1, capabilities: [] }, proposed: [], candidates: [] })));
  });
  afterEach(() => vi.unstubAllGlobals());

  it('shows each order with its live state and elapsed time', async () => {
    const store = new Store();
    const now = Date.now();
    const base: Order = {
      id: 1, incident_id: 1, unit_id: 1, call_sign: 'P-1', device_id: 1, state: 'queued',
      created_at_ms: now - 65_000, delivered_at_ms: null, decided_at_ms: null, decline_reason: null, completed_at_ms: null,
    };
    store.incidents.set(1, {
      id: 1, kind: 'burglary', priority: 1, status: 'dispatched', lat: 60, lon: 24, address: 'Somewhere 1',
      caller: null, callback: null, notes: null, required_capabilities: [], phase: 'dispatched', created_at_ms: now, updated_at_ms: now,
      closed_at_ms: null, disposition: null, emergency_unit_id: null,
    });
    store.orders.set(1, base);
    store.orders.set(2, { ...base, id: 2, call_sign: 'P-2', state: 'acknowledged', delivered_at_ms: now - 30_000, acknowledged_at_ms: now - 10_000 });
    const panel = new IncidentPanel(store, () => {});
    store.select(1);
    await flush();
    const rows = [...panel.el.querySelectorAll('.order')];
    expect(rows.map((r) => r.getAttribute('data-state'))).toEqual(['acknowledged', 'queued']);
    expect(rows[0].querySelector('.state')?.textContent).toBe('acknowledged');
    expect(rows[0].querySelector('.elapsed')?.textContent).toBe('0:10');
    expect(rows[1].classList.contains('waiting')).toBe(true);
    expect(rows[1].querySelector('.elapsed')?.textContent).toBe('1:05');
  });

  it('times each state from the moment it began', () => {
    const o = { created_at_ms: 1, delivered_at_ms: 2, decided_at_ms: 3, completed_at_ms: 4, displayed_at_ms: null } as Order;
    expect(stateSince({ ...o, state: 'queued' })).toBe(1);
    expect(stateSince({ ...o, state: 'displayed' })).toBe(2);
    expect(stateSince({ ...o, state: 'accepted' })).toBe(3);
    expect(stateSince({ ...o, state: 'completed' })).toBe(4);
  });
});

describe('small views', () => {
  it('filters the supervisor list', () => {
    const mk = (id: number, status: string, priority: number, address: string) =>
      ({ id, status, priority, address, kind: 'theft', caller: null }) as Incident;
    const list = [mk(1, 'open', 1, 'Mannerheimintie 1'), mk(2, 'closed', 1, 'Kalevankatu 3'), mk(3, 'open', 3, 'Kalevankatu 5')];
    expect(filterIncidents(list, { status: 'open', priority: '', text: '' }).map((i) => i.id)).toEqual([1, 3]);
    expect(filterIncidents(list, { status: '', priority: '1', text: 'kaleva' }).map((i) => i.id)).toEqual([2]);
    // Notes, the caller's number and the translated kind are searched too.
    const noted = { ...mk(4, 'open', 2, 'Fredrikinkatu 2'), notes: 'Red van seen leaving', callback: '0401234567' } as Incident;
    expect(filterIncidents([...list, noted], { status: '', priority: '', text: 'red van' }).map((i) => i.id)).toEqual([4]);
    expect(filterIncidents([...list, noted], { status: '', priority: '', text: '040123' }).map((i) => i.id)).toEqual([4]);
    expect(filterIncidents(list, { status: '', priority: '', text: '#3' }).map((i) => i.id)).toEqual([3]);
    const sent = new Map([[2, ['P-12', 'K9-3']]]);
    expect(filterIncidents(list, { status: '', priority: '', text: 'k9-3' }, sent).map((i) => i.id)).toEqual([2]);
  });

  it('words the timeline events in the reader\'s language', () => {
    setLang('en');
    expect(code('order_queued')).toBe('order sent');
    expect(code('unit_on_scene')).toBe('unit on scene');
    setLang('ko');
    expect(code('order_acknowledged')).toBe('지령 확인');
    const events = ['incident_created', 'incident_updated', 'incident_closed', 'order_escalated', 'order_transferred',
      'attention_raised', 'attention_resolved', 'alert_acknowledged', 'officer_emergency', 'text_to_unit',
      'unit_message', 'unit_link_lost', 'unit_link_restored', 'broadcast_sent', 'narrative_added', 'caller_added',
      'unit_updated', 'unit_disabled', 'unit_enabled',
      ...['queued', 'delivered', 'displayed', 'acknowledged', 'accepted', 'declined', 'completed', 'cancelled', 'expired'].map((s) => `order_${s}`),
      ...['assigned', 'en_route', 'on_scene', 'available', 'out_of_service'].map((s) => `unit_${s}`)];
    expect(missingCodes(events)).toEqual([]);
  });

  it('puts busy units first on the board', () => {
    const u = (call_sign: string, status: string) => ({ call_sign, status }) as never;
    expect(boardOrder([u('B', 'available'), u('A', 'on_scene'), u('C', 'out_of_service'), u('D', 'en_route')]).map((x: { call_sign: string }) => x.call_sign)).toEqual(['A', 'D', 'B', 'C']);
  });

  it('words an escalation for the banner', () => {
    setLang('en');
    const text = alertText({
      event_id: 1, at_ms: 0, kind: 'order_escalated', incident_id: 4, order_id: 2, unit_id: 1,
      detail: { stage: 'no_acknowledgement', call_sign: 'P-12', waited_ms: 90_000, proposed: { unit_id: 3, call_sign: 'P-7' } },
    });
    expect(text).toBe('#4 P-12 not acknowledged by the officer 90 s · propose: P-7');
  });
});

describe('UnitForm', () => {
  let fetchMock: ReturnType<typeof vi.fn>;
  beforeEach(() => {
    setLang('en');
    fetchMock = vi.fn();
    vi.stubGlobal('fetch', fetchMock);
  });
  afterEach(() => vi.unstubAllGlobals());

  it('offers the configured kinds, edits a unit in place and starts empty after saving', async () => {
    const runs: Promise<unknown>[] = [];
    const form = new UnitForm(async (action) => {
      runs.push(action());
      await runs[runs.length - 1];
    });
    document.body.replaceChildren(form.el);
    const field = (id: string) => form.el.querySelector(`[data-testid=${id}]`) as HTMLInputElement & HTMLSelectElement;
    fetchMock.mockResolvedValueOnce(jsonResponse({ kinds: ['patrol_car', 'motorcycle'] }));
    await form.loadKinds();
    expect([...field('unit-kind').options].map((o) => [o.value, o.textContent])).toEqual([
      ['patrol_car', 'patrol car'],
      ['motorcycle', 'motorcycle'],
    ]);

    form.edit({ id: 7, call_sign: 'P-7', kind: 'boat', capabilities: ['patrol', 'k9'], home_station: 'Pasila' } as Unit);
    expect(field('unit-kind').value).toBe('boat'); // a kind no longer configured stays its own
    expect(field('save-unit').textContent).toBe('Save (P-7)');
    field('unit-call-sign').value = 'M-7';
    field('unit-kind').value = 'motorcycle';
    fetchMock.mockResolvedValueOnce(jsonResponse({ id: 7 }));
    form.el.dispatchEvent(new Event('submit'));
    await vi.waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(2));
    await Promise.all(runs);
    const [url, init] = fetchMock.mock.calls[1];
    expect([url, init.method]).toEqual(['/api/units/7', 'PUT']);
    expect(JSON.parse(init.body)).toEqual({ call_sign: 'M-7', kind: 'motorcycle', capabilities: ['patrol', 'k9'], home_station: 'Pasila' });
    for (const id of ['unit-call-sign', 'unit-capabilities', 'unit-station']) expect(field(id).value, id).toBe('');
    expect(field('save-unit').textContent).toBe('Add unit');
  });
});

describe('enrolment', () => {
  it('shows the code, the fingerprint as --pin takes it, the link and its QR code', () => {
    setLang('en');
    const pin = 'ab'.repeat(32);
    const block = enrolmentBlock({
      code: 'K7QX-4MZD-P2WA',
      expires_at_ms: 0,
      fingerprint: pin,
      link: `dispatch-enrol://10.0.0.1:8443?code=K7QX-4MZD-P2WA&pin=${pin}`,
      qr_svg: '<svg xmlns="http://www.w3.org/2000/svg"></svg>',
    });
    expect(block.querySelector('[data-testid=fingerprint]')?.textContent).toBe(pin);
    expect(block.querySelector('[data-testid=enrol-link]')?.textContent).toContain('code=K7QX-4MZD-P2WA');
    expect(block.querySelector('[data-testid=enrol-qr]')?.getAttribute('src')).toMatch(/^data:image\/svg\+xml;base64,/);
    const bare = enrolmentBlock({ code: 'A', expires_at_ms: 0, fingerprint: pin, link: null, qr_svg: null });
    expect(bare.querySelector('[data-testid=enrol-link]')).toBeNull();
    expect(bare.querySelector('[data-testid=enrol-qr]')).toBeNull();
  });
});
