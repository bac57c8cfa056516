//! Map replay of one incident on a map of its own (not over the live map): the incident's place,
//! the recorded tracks of the units ordered to it, and a marker per unit where it was at the
//! replay's clock. Play, pause, speed and a scrub bar drive the clock; whoever shows the replay
//! hears of each new time (the timeline greys out what had not happened yet). The map is drawn
//! with a kept buffer, so the printable report takes its picture.

import maplibregl from 'maplibre-gl';

import { h, replace } from '../dom';
import { pinContent } from '../icons';
import { t } from '../i18n';
import { dateTime, elapsed, priorityColour } from '../format';

export interface TrackPoint {
  lat: number;
  lon: number;
  at_ms: number;
}

export interface Track {
  callSign: string;
  colour: string;
  points: TrackPoint[];
}

/** Replay speeds offered: real time up to an hour a minute. */
export const SPEEDS = [1, 4, 16, 60];

/** Steps of the scrub bar. */
const SCRUB_STEPS = 1000;

/**
 * Where a track was at `at`, as `[lon, lat]`: between two fixes, on the straight line between
 * them in proportion to the time; before the first fix at the first, after the last at the last;
 * null for a track without fixes. Points are in time order.
 */
export function positionAt(points: TrackPoint[], at: number): [number, number] | null {
  if (points.length === 0) return null;
  if (at <= points[0].at_ms) return [points[0].lon, points[0].lat];
  for (let i = 1; i < points.length; i++) {
    const [a, b] = [points[i - 1], points[i]];
    if (at <= b.at_ms) {
      const f = b.at_ms === a.at_ms ? 1 : (at - a.at_ms) / (b.at_ms - a.at_ms);
      return [a.lon + (b.lon - a.lon) * f, a.lat + (b.lat - a.lat) * f];
    }
  }
  const last = points[points.length - 1];
  return [last.lon, last.lat];
}

export class ReplayPlayer {
  el: HTMLElement;
  private map: maplibregl.Map;
  private markers: { track: Track; marker: maplibregl.Marker }[] = [];
  private at: number;
  private speed = SPEEDS[2];
  private playing = false;
  private frame = 0;
  private lastTick = 0;
  private playButton = h('button', { type: 'button', 'data-testid': 'replay-play', onclick: () => this.toggle() }, t('play'));
  private scrub = h('input', { type: 'range', min: 0, max: SCRUB_STEPS, value: 0, 'data-testid': 'replay-scrub' });
  private clockEl = h('span', { class: 'replay-clock', 'data-testid': 'replay-clock' });
  private picture = h('img', { class: 'report-map', alt: '', 'data-testid': 'report-map' });
  /** The incident and every recorded fix: what the map shows. */
  private bounds: maplibregl.LngLatBounds;

  /**
   * Replays `tracks` over `[start, end]` around the incident at `place`; `onTime` hears every new
   * clock time.
   */
  constructor(
    place: { lat: number; lon: number; priority: number; kind: string },
    tracks: Track[],
    private start: number,
    private end: number,
    private onTime: (at: number) => void,
  ) {
    this.at = start;
    const mapEl = h('div', { class: 'replay-map', 'data-testid': 'replay-map' });
    const speed = h(
      'select',
      { 'data-testid': 'replay-speed', 'aria-label': t('speed') },
      SPEEDS.map((s) => h('option', { value: s, selected: s === this.speed }, `${s}×`)),
    );
    speed.addEventListener('change', () => {
      this.speed = Number(speed.value);
    });
    this.scrub.addEventListener('input', () => {
      this.pause();
      this.seek(this.start + ((this.end - this.start) * Number(this.scrub.value)) / SCRUB_STEPS);
    });
    this.el = h(
      'div',
      { class: 'replay', 'data-testid': 'replay' },
      mapEl,
      h('div', { class: 'row replay-controls' }, this.playButton, speed, this.scrub, this.clockEl),
      this.picture,
    );
    this.map = new maplibregl.Map({
      container: mapEl,
      style: '/api/map/style.json',
      attributionControl: { compact: true },
      canvasContextAttributes: { preserveDrawingBuffer: true },
      transformRequest: (url) => ({ url: url.startsWith('/') ? location.origin + url : url }),
    });
    Object.defineProperty(mapEl, 'maplibreMap', { value: this.map });
    const pin = h('div', { class: 'incident-marker' }, pinContent(place.kind, place.priority));
    pin.style.background = priorityColour(place.priority);
    new maplibregl.Marker({ element: pin, anchor: 'bottom-left' }).setLngLat([place.lon, place.lat]).addTo(this.map);
    this.bounds = new maplibregl.LngLatBounds([place.lon, place.lat], [place.lon, place.lat]);
    tracks.flatMap((tr) => tr.points).forEach((p) => this.bounds.extend([p.lon, p.lat]));
    this.map.on('load', () => {
      this.map.addSource('tracks', {
        type: 'geojson',
        data: {
          type: 'FeatureCollection',
          features: tracks
            .filter((tr) => tr.points.length >= 2)
            .map((tr) => ({
              type: 'Feature',
              properties: { colour: tr.colour },
              geometry: { type: 'LineString', coordinates: tr.points.map((p) => [p.lon, p.lat]) },
            })),
        },
      });
      this.map.addLayer({ id: 'tracks', type: 'line', source: 'tracks', paint: { 'line-color': ['get', 'colour'], 'line-width': 4 } });
      // The incident's place drawn in the map itself too: the printed picture has no markers.
      this.map.addSource('place', {
        type: 'geojson',
        data: { type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: [place.lon, place.lat] } },
      });
      this.map.addLayer({
        id: 'place',
        type: 'circle',
        source: 'place',
        paint: {
          'circle-radius': 9,
          'circle-color': priorityColour(place.priority),
          'circle-stroke-color': '#ffffff',
          'circle-stroke-width': 2,
        },
      });
      // The report's picture: the whole tracks, once drawn.
      this.map.once('idle', () => {
        this.picture.src = this.map.getCanvas().toDataURL('image/png');
      });
    });
    this.markers = tracks
      .filter((tr) => tr.points.length > 0)
      .map((track) => {
        const el = h('div', { class: 'unit-marker replay-marker', 'data-replay-unit': track.callSign }, track.callSign);
        el.style.background = track.colour;
        return { track, marker: new maplibregl.Marker({ element: el }) };
      });
    this.seek(start);
  }

  /** Sizes the map to its place on the page (call once `el` is in the document) and shows the
   *  incident with every track. */
  shown(): void {
    this.map.resize();
    this.map.fitBounds(this.bounds, { padding: 50, maxZoom: 16, duration: 0 });
  }

  /** Moves the clock to `at` (within the replay's span) and the markers with it. */
  seek(at: number): void {
    this.at = Math.min(this.end, Math.max(this.start, at));
    for (const { track, marker } of this.markers) {
      const p = positionAt(track.points, this.at);
      if (p) marker.setLngLat(p).addTo(this.map);
    }
    const span = this.end - this.start;
    this.scrub.value = String(span > 0 ? Math.round(((this.at - this.start) / span) * SCRUB_STEPS) : 0);
    replace(this.clockEl, `${dateTime(this.at)} (+${elapsed(this.at - this.start)})`);
    this.onTime(this.at);
  }

  private toggle(): void {
    if (this.playing) this.pause();
    else this.play();
  }

  play(): void {
    if (this.at >= this.end) this.seek(this.start);
    this.playing = true;
    replace(this.playButton, t('pause'));
    this.lastTick = performance.now();
    const tick = (now: number) => {
      if (!this.playing) return;
      this.seek(this.at + (now - this.lastTick) * this.speed);
      this.lastTick = now;
      if (this.at >= this.end) this.pause();
      else this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
  }

  pause(): void {
    this.playing = false;
    cancelAnimationFrame(this.frame);
    replace(this.playButton, t('play'));
  }

  /** Stops the clock and frees the map. */
  destroy(): void {
    this.pause();
    this.map.remove();
  }
}
