//! Incident icons, drawn here as SVG (no icon font or image from anywhere else): one shape per
//! family of incident types, so an operator tells a fire from a traffic accident at a glance.

import { h } from './dom';

const SVG = 'http://www.w3.org/2000/svg';

/** 24 × 24 outlines, filled. */
const SHAPES = {
  house: 'M3 11.5 12 3.5l9 8V21h-6v-6H9v6H3z',
  car: 'M4 12.5 6.2 6.5h11.6l2.2 6H21v5.5h-2V20h-3v-2H8v2H5v-2H3v-5.5zm3-1h10l-1.3-3.5H8.3zM6.5 14a1.3 1.3 0 1 0 0 2.6 1.3 1.3 0 0 0 0-2.6zm11 0a1.3 1.3 0 1 0 0 2.6 1.3 1.3 0 0 0 0-2.6z',
  flame: 'M12.5 2c.8 4 6 6.3 6 12.3a6.5 6.5 0 0 1-13 0c0-3 1.6-5.1 3.2-6.8.1 2.2 1 3.4 2.2 3.6-.6-3.3.2-6.3 1.6-9.1z',
  person: 'M12 3a4 4 0 1 1 0 8 4 4 0 0 1 0-8zM4.5 21c0-4.4 3.4-8 7.5-8s7.5 3.6 7.5 8z',
  bag: 'M5 8h3V6.5a4 4 0 0 1 8 0V8h3l1 13H4zm5 0h4V6.5a2 2 0 0 0-4 0z',
  alert: 'M10.5 3h3l-.5 11h-2zM12 16.5a2 2 0 1 1 0 4 2 2 0 0 1 0-4z',
} as const;

export type Shape = keyof typeof SHAPES;

/** The shape of each incident type the console offers; any other type gets `alert`. */
export const KIND_SHAPES: Record<string, Shape> = {
  burglary: 'house',
  domestic_violence: 'house',
  traffic_accident: 'car',
  fire: 'flame',
  missing_person: 'person',
  suspicious_person: 'person',
  theft: 'bag',
  robbery: 'bag',
  assault: 'alert',
  disturbance: 'alert',
};

export function shapeOf(kind: string): Shape {
  return KIND_SHAPES[kind] ?? 'alert';
}

/** The icon of an incident type, in `currentColor`. */
export function incidentIcon(kind: string): SVGSVGElement {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'icon');
  svg.dataset.shape = shapeOf(kind);
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', SHAPES[shapeOf(kind)]);
  path.setAttribute('fill', 'currentColor');
  path.setAttribute('fill-rule', 'evenodd');
  svg.append(path);
  return svg;
}

/** What an incident's pin shows, on the live map and on a replay: its type's icon and its
 *  priority in a badge. */
export function pinContent(kind: string, priority: number): Node[] {
  return [incidentIcon(kind), h('span', { class: 'prio' }, `P${priority}`)];
}
