//! The live map on our own basemap: units (status colour and call sign, drawn above incident
//! pins), incidents (priority colour), the recent trail of each unit the operator clicks, a
//! polygon drawing mode for area broadcasts (an incident's replay has a map of its own).

import maplibregl from 'maplibre-gl';
import workerUrl from 'maplibre-gl/dist/maplibre-gl-csp-worker.js?url';
import 'maplibre-gl/dist/maplibre-gl.css';

import { h } from './dom';
import { code, t as text } from './i18n';
import { priorityColour, statusColour } from './format';
import type { Store } from './store';

maplibregl.setWorkerUrl(workerUrl);

type LngLat = [number, number];

const EMPTY: GeoJSON.FeatureCollection = { type: 'FeatureCollection', features: [] };

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
          this.onSelectIncident(i.id);
        });
        m = { el, marker: new maplibregl.Marker({ element: el }).setLngLat([i.lon, i.lat]).addTo(this.map) };
        this.incidentMarkers.set(i.id, m);
      }
      m.marker.setLngLat([i.lon, i.lat]);
      m.el.textContent = `P${i.priority}`;
      m.el.style.background = priorityColour(i.priority);
      m.el.classList.toggle('selected', this.store.selectedIncident === i.id);
      m.el.title = `#${i.id} ${i.kind} · ${i.address ?? ''}`;
    }
    for (const [id, m] of this.incidentMarkers) {
      if (!seen.has(id)) {
        m.marker.remove();
        this.incidentMarkers.delete(id);
      }
    }
  }

  /** Units whose trail is drawn: none at first (ten minutes of every car's movements hide the
   *  map); a click on a unit's marker shows or hides its own. */
  private trailUnits = new Set<number>();

  toggleTrail(unitId: number): void {
    if (!this.trailUnits.delete(unitId)) this.trailUnits.add(unitId);
    this.renderUnits();
    this.renderTrails();
  }

  private renderTrails(): void {
    if (!this.loaded) return;
    const features: GeoJSON.Feature[] = [];
    for (const [id, trail] of this.store.trails) {
      if (trail.length < 2 || !this.trailUnits.has(id)) continue;
      const u = this.store.units.get(id);
      features.push({
        type: 'Feature',
        properties: { colour: statusColour(u?.status ?? '') },
        geometry: { type: 'LineString', coordinates: trail.map(([lon, lat]) => [lon, lat]) },
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
