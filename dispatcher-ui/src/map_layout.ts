//! Where the live map draws things, as pure functions: collision handling for markers (markers
//! closer on screen than a radius are drawn as one, the most important, with a count of the
//! others), which units matter most, and the mask over the world outside the map data.

export interface Placed<T> {
  item: T;
  x: number;
  y: number;
}

/**
 * Groups screen points: each point joins the first group whose lead (its first point) lies
 * within `radius` pixels, else starts a group. Points come most important first, so each group
 * is led by its most important point. Groups keep the input order.
 */
export function clusterByDistance<T>(points: Placed<T>[], radius: number): Placed<T>[][] {
  const groups: Placed<T>[][] = [];
  for (const p of points) {
    const near = groups.find((g) => Math.hypot(g[0].x - p.x, g[0].y - p.y) < radius);
    if (near) near.push(p);
    else groups.push([p]);
  }
  return groups;
}

/** What decides which of overlapping unit markers is drawn. */
export interface UnitMark {
  call_sign: string;
  status: string;
  link_lost_at_ms: number | null;
}

/**
 * Units most in need of the dispatcher's eye first: those whose link is lost (an alarm), then
 * the available ones (whom one can send), then the rest; by call sign within each.
 */
export function unitsByImportance<T extends UnitMark>(units: T[]): T[] {
  const rank = (u: T) => (u.link_lost_at_ms !== null ? 0 : u.status === 'available' ? 1 : 2);
  return [...units].sort((a, b) => rank(a) - rank(b) || a.call_sign.localeCompare(b.call_sign));
}

/** The map's `[west, south, east, north]` as `GET /api/map/info` gives it. */
export type Bounds = [number, number, number, number];

/** The world with a hole where the map data is: the "no map data" mask. */
export function outsideOf([w, s, e, n]: Bounds): GeoJSON.Feature<GeoJSON.Polygon> {
  return {
    type: 'Feature',
    properties: {},
    geometry: {
      type: 'Polygon',
      coordinates: [
        [[-180, -85], [180, -85], [180, 85], [-180, 85], [-180, -85]],
        [[w, s], [w, n], [e, n], [e, s], [w, s]],
      ],
    },
  };
}
