//! The live map on our own basemap: units (status colour and call sign, drawn above incident
//! pins); incidents (an icon for their type on their priority's colour). Below street level,
//! markers that would overlap are drawn as one with a count: the most urgent incident, and a
//! unit whose link is lost or else an available one in front. For each unit the operator
//! clicks, its recent trail along the roads it drove and, when it holds an order, its road route
//! to the incident; a polygon drawing mode for area broadcasts. It opens on the fleet and the
//! open incidents (or the whole map data), and the area outside the map data is greyed and
//! marked as such. An incident's replay has a map of its own.

import maplibregl from 'maplibre-gl';
import workerUrl from 'maplibre-gl/dist/maplibre-gl-csp-worker.js?url';
import 'maplibre-gl/dist/maplibre-gl.css';

import { get } from './api';
import { clusterByDistance, outsideOf, unitsByImportance, type Bounds } from './map_layout';
import { h } from './dom';
import { pinContent } from './icons';
import { code, t as text } from './i18n';
import { finished, priorityColour, statusColour } from './format';
import { TRAIL_MS, type Store } from './store';

maplibregl.setWorkerUrl(workerUrl);

type LngLat = [number, number];

const EMPTY: GeoJSON.FeatureCollection = { type: 'FeatureCollection', features: [] };

/** How often a selected unit's trail along the roads is fetched again while it moves. */
const ROAD_TRAIL_REFRESH_MS = 10_000;

/** Below this zoom, markers that would overlap are drawn as one. */
const CLUSTER_BELOW_ZOOM = 15;
/** Markers closer than this on screen overlap, in pixels. */
const CLUSTER_RADIUS_PX = 36;

export class LiveMap {
  map: maplibregl.Map;
  private unitMarkers = new Map<number, { marker: maplibregl.Marker; el: HTMLElement }>();
  private incidentMarkers = new Map<number, { marker: maplibregl.Marker; el: HTMLElement }>();
  private pickMarker: maplibregl.Marker | null = null;
  private drawing: LngLat[] | null = null;
  private loaded = false;
  /** Called with a map click when not drawing: `(lat, lon)`. */
  onPick: (lat: number, lon: number) => void = () => {};
  /** Called when the drawn polygon changes: `[lat, lon]` vertices. */
  onPolygon: (polygon: [number, number][]) => void = () => {};
  onSelectIncident: (id: number) => void = () => {};

  constructor(
    container: HTMLElement,
    private store: Store,
  ) {
    this.map = new maplibregl.Map({
      container,
      style: '/api/map/style.json',
      attributionControl: { compact: true },
      transformRequest: (url) => ({ url: url.startsWith('/') ? location.origin + url : url }),
    });
    this.map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-left');
    // The browser tests read the rendered label features through it.
    Object.defineProperty(container, 'maplibreMap', { value: this.map });
    container.append(legend());
    this.map.on('error', (e) => console.warn('map', e.error?.message ?? e));
    this.map.on('load', () => {
      this.loaded = true;
      this.map.addSource('trails', { type: 'geojson', data: EMPTY });
      this.map.addLayer({
        id: 'trails',
        type: 'line',
        source: 'trails',
        paint: { 'line-color': ['get', 'colour'], 'line-width': 3, 'line-opacity': 0.55 },
      });
      this.map.addSource('routes', { type: 'geojson', data: EMPTY });
      this.map.addLayer({
        id: 'routes',
        type: 'line',
        source: 'routes',
        layout: { 'line-cap': 'round' },
        paint: { 'line-color': '#1f5fa8', 'line-width': 4, 'line-dasharray': [1.5, 1.2] },
      });
      this.map.addSource('draw', { type: 'geojson', data: EMPTY });
      this.map.addLayer({
        id: 'draw-fill',
        type: 'fill',
        source: 'draw',
        paint: { 'fill-color': '#c4161c', 'fill-opacity': 0.12 },
      });
      this.map.addLayer({
        id: 'draw-line',
        type: 'line',
        source: 'draw',
        paint: { 'line-color': '#c4161c', 'line-width': 2, 'line-dasharray': [2, 1] },
      });
      this.renderTrails();
      this.renderDrawing();
      void this.showDataArea();
    });
    this.map.on('zoomend', () => {
      this.renderIncidents();
      this.renderUnits();
    });
    this.map.on('click', (e) => {
      if (this.drawing) {
        this.drawing.push([e.lngLat.lng, e.lngLat.lat]);
        this.renderDrawing();
        this.onPolygon(this.polygon());
      } else {
        this.onPick(e.lngLat.lat, e.lngLat.lng);
      }
    });
    store.subscribe((what) => {
      if (what.has('units')) this.renderUnits();
      if (what.has('incidents') || what.has('selection')) this.renderIncidents();
      if (what.has('trails')) this.renderTrails();
    });
  }

  renderUnits(): void {
    const seen = new Set<number>();
    for (const u of this.store.units.values()) {
      if (!u.position) continue;
      seen.add(u.id);
      let m = this.unitMarkers.get(u.id);
      if (!m) {
        const el = h('div', { class: 'unit-marker', 'data-unit': u.id });
        const id = u.id;
        el.addEventListener('click', (ev) => {
          ev.stopPropagation();
          if (this.zoomIntoCluster(el, m?.marker)) return;
          this.toggleTrail(id);
        });
        m = { el, marker: new maplibregl.Marker({ element: el }).setLngLat([u.position.lon, u.position.lat]).addTo(this.map) };
        this.unitMarkers.set(u.id, m);
      }
      m.marker.setLngLat([u.position.lon, u.position.lat]);
      const linkLost = u.link_lost_at_ms !== null;
      m.el.textContent = linkLost ? `⚠ ${u.call_sign}` : u.call_sign;
      m.el.classList.toggle('no-link', linkLost);
      m.el.style.background = statusColour(u.status);
      m.el.classList.toggle('trail-on', this.trailUnits.has(u.id));
      m.el.title = `${u.call_sign} · ${code(u.status)}${linkLost ? ` · ${text('no_link')}` : ''} · ${text(
        this.trailUnits.has(u.id) ? 'hide_trail' : 'show_trail',
      )}`;
    }
    for (const [id, m] of this.unitMarkers) {
      if (!seen.has(id)) {
        m.marker.remove();
        this.unitMarkers.delete(id);
      }
    }
    this.declutter(
      this.unitMarkers,
      unitsByImportance([...this.store.units.values()]).flatMap((u) =>
        u.position ? [{ id: u.id, lon: u.position.lon, lat: u.position.lat }] : [],
      ),
    );
  }

  /** Zooms in on a marker drawn for several; returns whether it was one. */
  private zoomIntoCluster(el: HTMLElement, marker: maplibregl.Marker | undefined): boolean {
    if (Number(el.dataset.cluster ?? '1') <= 1) return false;
    this.map.easeTo({ center: marker?.getLngLat(), zoom: this.map.getZoom() + 2 });
    return true;
  }

  renderIncidents(): void {
    const seen = new Set<number>();
    for (const i of this.store.incidents.values()) {
      seen.add(i.id);
      let m = this.incidentMarkers.get(i.id);
      if (!m) {
        const el = h('div', { class: 'incident-marker', 'data-incident': i.id });
        el.addEventListener('click', (ev) => {
          ev.stopPropagation();
          if (!this.zoomIntoCluster(el, m?.marker)) this.onSelectIncident(i.id);
        });
        m = { el, marker: new maplibregl.Marker({ element: el, anchor: 'bottom-left' }).setLngLat([i.lon, i.lat]).addTo(this.map) };
        this.incidentMarkers.set(i.id, m);
      }
      m.marker.setLngLat([i.lon, i.lat]);
      if (m.el.dataset.kind !== i.kind || m.el.dataset.priority !== String(i.priority)) {
        m.el.dataset.kind = i.kind;
        m.el.dataset.priority = String(i.priority);
        m.el.replaceChildren(...pinContent(i.kind, i.priority));
      }
      m.el.style.background = priorityColour(i.priority);
      m.el.classList.toggle('selected', this.store.selectedIncident === i.id);
      m.el.title = `#${i.id} ${code(i.kind)} · P${i.priority} · ${i.address ?? ''}`;
    }
    for (const [id, m] of this.incidentMarkers) {
      if (!seen.has(id)) {
        m.marker.remove();
        this.incidentMarkers.delete(id);
      }
    }
    const urgentFirst = [...this.store.incidents.values()].sort((a, b) => a.priority - b.priority || a.id - b.id);
    this.declutter(this.incidentMarkers, urgentFirst);
    this.fitOpeningView();
  }

  /** Below street level, markers that would overlap show as the first of them (`leadFirst`
   *  is most important first) with a count of the others. */
  private declutter(
    markers: Map<number, { marker: maplibregl.Marker; el: HTMLElement }>,
    leadFirst: { id: number; lon: number; lat: number }[],
  ): void {
    const clustering = this.loaded && this.map.getZoom() < CLUSTER_BELOW_ZOOM;
    const groups = clustering
      ? clusterByDistance(
          leadFirst.map((i) => {
            const p = this.map.project([i.lon, i.lat]);
            return { item: i.id, x: p.x, y: p.y };
          }),
          CLUSTER_RADIUS_PX,
        )
      : leadFirst.map((i) => [{ item: i.id, x: 0, y: 0 }]);
    for (const group of groups) {
      group.forEach(({ item }, k) => {
        const m = markers.get(item);
        if (!m) return;
        m.el.hidden = k > 0;
        m.el.querySelector('.count')?.remove();
        if (k === 0 && group.length > 1) {
          m.el.dataset.cluster = String(group.length);
          m.el.append(h('span', { class: 'count' }, `+${group.length - 1}`));
        } else {
          delete m.el.dataset.cluster;
        }
      });
    }
  }

  /** Whether the opening view was chosen (once, on the first data). */
  private opened = false;

  /** Opens on the units and open incidents once both the map and the first data are here. */
  private fitOpeningView(): void {
    if (this.opened || !this.loaded) return;
    const points: [number, number][] = [
      ...[...this.store.units.values()].flatMap((u) => (u.position ? [[u.position.lon, u.position.lat] as [number, number]] : [])),
      ...[...this.store.incidents.values()].map((i) => [i.lon, i.lat] as [number, number]),
    ];
    if (points.length === 0) return;
    this.opened = true;
    const bounds = new maplibregl.LngLatBounds(points[0], points[0]);
    points.forEach((p) => bounds.extend(p));
    this.map.fitBounds(bounds, { padding: 80, maxZoom: 15, duration: 0 });
  }

  /** Greys the world outside the map data and says so along its edge; with no units or
   *  incidents yet, opens on the whole map data. */
  private async showDataArea(): Promise<void> {
    let info: { bounds: Bounds };
    try {
      info = await get<{ bounds: Bounds }>('/api/map/info');
    } catch {
      return; // no map configured: nothing to mark
    }
    const mask = outsideOf(info.bounds);
    this.map.addSource('no-map-data', { type: 'geojson', data: mask });
    this.map.addLayer({
      id: 'no-map-data',
      type: 'fill',
      source: 'no-map-data',
      paint: { 'fill-color': '#8a8f96', 'fill-opacity': 0.55 },
    });
    this.map.addLayer({
      id: 'no-map-data-edge',
      type: 'line',
      source: 'no-map-data',
      paint: { 'line-color': '#5f6670', 'line-width': 1.5, 'line-dasharray': [3, 2] },
    });
    this.map.addLayer({
      id: 'no-map-data-label',
      type: 'symbol',
      source: 'no-map-data',
      layout: {
        'symbol-placement': 'line',
        'symbol-spacing': 400,
        'text-field': text('no_map_data'),
        'text-font': ['Noto Sans Regular'],
        'text-size': 13,
        'text-offset': [0, 1],
      },
      paint: { 'text-color': '#3b4047', 'text-halo-color': '#ffffff', 'text-halo-width': 1.5 },
    });
    if (!this.opened && this.store.units.size === 0 && this.store.incidents.size === 0) {
      const [w, s, e, n] = info.bounds;
      this.map.fitBounds([[w, s], [e, n]], { padding: 20, duration: 0 });
    }
    this.fitOpeningView();
  }

  /** Units whose trail is drawn: none at first (ten minutes of every car's movements hide the
   *  map); a click on a unit's marker shows or hides its own. */
  private trailUnits = new Set<number>();

  toggleTrail(unitId: number): void {
    if (!this.trailUnits.delete(unitId)) {
      this.trailUnits.add(unitId);
      void this.showRoute(unitId);
    } else {
      this.routes.delete(unitId);
      this.roadTrails.delete(unitId);
      this.renderRoutes();
    }
    this.renderUnits();
    this.renderTrails();
  }

  /** The road route of each selected unit that holds an order, to its incident. */
  private routes = new Map<number, GeoJSON.Feature>();

  /** Fetches and draws the route the unit drives to the incident of its active order, if any. */
  private async showRoute(unitId: number): Promise<void> {
    const order = [...this.store.orders.values()].find((o) => o.unit_id === unitId && !finished(o.state));
    const incident = order ? this.store.incidents.get(order.incident_id) : undefined;
    if (!incident) return;
    const route = await get<{ eta_s: number; coordinates: [number, number][] }>(
      `/api/units/${unitId}/route?lat=${incident.lat}&lon=${incident.lon}`,
    ).catch(() => null);
    if (!route || !this.trailUnits.has(unitId)) return;
    this.routes.set(unitId, {
      type: 'Feature',
      properties: { unit_id: unitId, eta_s: route.eta_s },
      geometry: { type: 'LineString', coordinates: route.coordinates },
    });
    this.renderRoutes();
  }

  private renderRoutes(): void {
    (this.map.getSource('routes') as maplibregl.GeoJSONSource | undefined)?.setData({
      type: 'FeatureCollection',
      features: [...this.routes.values()],
    });
  }

  /** Each selected unit's recorded trail along the roads it drove, as the server draws it
   *  (`GET /api/units/{id}/trail/roads`), and when it was fetched. */
  private roadTrails = new Map<number, { fetchedMs: number; coordinates: [number, number][] | null }>();
  private fetchingTrails = new Set<number>();

  /** Fetches a selected unit's trail along the roads; again at most every ROAD_TRAIL_REFRESH_MS. */
  private async fetchRoadTrail(unitId: number): Promise<void> {
    this.fetchingTrails.add(unitId);
    try {
      const since = Date.now() - TRAIL_MS;
      const line = await get<{ coordinates: [number, number][] }>(`/api/units/${unitId}/trail/roads?since_ms=${since}`);
      if (this.trailUnits.has(unitId)) {
        this.roadTrails.set(unitId, { fetchedMs: Date.now(), coordinates: line.coordinates });
      }
    } catch {
      // Drawn from the live points until the next try, at the same pace as a success.
      if (this.trailUnits.has(unitId)) this.roadTrails.set(unitId, { fetchedMs: Date.now(), coordinates: null });
    } finally {
      this.fetchingTrails.delete(unitId);
    }
    this.renderTrails();
  }

  private renderTrails(): void {
    if (!this.loaded) return;
    const features: GeoJSON.Feature[] = [];
    for (const id of this.trailUnits) {
      const u = this.store.units.get(id);
      const road = this.roadTrails.get(id);
      if ((!road || Date.now() - road.fetchedMs > ROAD_TRAIL_REFRESH_MS) && !this.fetchingTrails.has(id)) {
        void this.fetchRoadTrail(id);
      }
      // Along the roads up to the last recorded fix, then straight to where the unit is now;
      // the live points as they came until the server's line is here.
      const here: [number, number][] = u?.position ? [[u.position.lon, u.position.lat]] : [];
      const coordinates = road?.coordinates
        ? [...road.coordinates, ...here]
        : (this.store.trails.get(id) ?? []).map(([lon, lat]) => [lon, lat] as [number, number]);
      if (coordinates.length < 2) continue;
      features.push({
        type: 'Feature',
        properties: { colour: statusColour(u?.status ?? '') },
        geometry: { type: 'LineString', coordinates },
      });
    }
    (this.map.getSource('trails') as maplibregl.GeoJSONSource | undefined)?.setData({
      type: 'FeatureCollection',
      features,
    });
  }

  /** Shows where a new incident will be. */
  showPick(lat: number, lon: number, fly = false): void {
    if (!this.pickMarker) {
      this.pickMarker = new maplibregl.Marker({ color: '#c4161c' });
    }
    this.pickMarker.setLngLat([lon, lat]).addTo(this.map);
    if (fly) this.map.flyTo({ center: [lon, lat], zoom: Math.max(this.map.getZoom(), 15) });
  }

  clearPick(): void {
    this.pickMarker?.remove();
  }

  flyTo(lat: number, lon: number): void {
    this.map.flyTo({ center: [lon, lat], zoom: Math.max(this.map.getZoom(), 14) });
  }

  startDrawing(): void {
    this.drawing = [];
    this.map.getCanvas().style.cursor = 'crosshair';
    this.renderDrawing();
  }

  stopDrawing(): void {
    this.map.getCanvas().style.cursor = '';
    const polygon = this.drawing;
    this.drawing = null;
    if (polygon) this.drawn = polygon;
    this.renderDrawing();
  }

  clearDrawing(): void {
    this.drawing = this.drawing ? [] : null;
    this.drawn = [];
    this.renderDrawing();
    this.onPolygon([]);
  }

  private drawn: LngLat[] = [];

  /** The polygon as `[lat, lon]` vertices (open ring). */
  polygon(): [number, number][] {
    return (this.drawing ?? this.drawn).map(([lon, lat]) => [lat, lon]);
  }

  private renderDrawing(): void {
    if (!this.loaded) return;
    const ring = this.drawing ?? this.drawn;
    const features: GeoJSON.Feature[] = [];
    if (ring.length >= 3) {
      features.push({ type: 'Feature', properties: {}, geometry: { type: 'Polygon', coordinates: [[...ring, ring[0]]] } });
    } else if (ring.length >= 2) {
      features.push({ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: ring } });
    }
    (this.map.getSource('draw') as maplibregl.GeoJSONSource | undefined)?.setData({ type: 'FeatureCollection', features });
  }
}

/** The key to the unit colours, in the operator's language. */
function legend(): HTMLElement {
  const statuses = ['available', 'assigned', 'en_route', 'on_scene', 'out_of_service'];
  return h(
    'div',
    { class: 'map-legend', 'data-testid': 'legend' },
    statuses.map((s) => {
      const dot = h('span', { class: 'dot' });
      dot.style.background = statusColour(s);
      return h('span', {}, dot, ' ', code(s));
    }),
  );
}
