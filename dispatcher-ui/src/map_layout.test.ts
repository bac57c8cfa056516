import { describe, expect, it } from 'vitest';

import { KINDS, missingCodes } from './i18n';
import { KIND_SHAPES, shapeOf } from './icons';
import { clusterByDistance, outsideOf, unitsByImportance } from './map_layout';

describe('map layout', () => {
  it('draws pins closer than the radius as one, led by the first (most urgent)', () => {
    const at = (item: string, x: number, y: number) => ({ item, x, y });
    const groups = clusterByDistance([at('p0', 0, 0), at('p1', 10, 10), at('far', 100, 0), at('p3', 20, 0)], 36);
    expect(groups.map((g) => g.map((p) => p.item))).toEqual([['p0', 'p1', 'p3'], ['far']]);
    expect(clusterByDistance([at('a', 0, 0), at('b', 36, 0)], 36)).toHaveLength(2);
    expect(clusterByDistance([], 36)).toEqual([]);
  });

  it('leads overlapping units with a lost link, then an available unit, then the rest', () => {
    const unit = (call_sign: string, status: string, link_lost_at_ms: number | null = null) => ({ call_sign, status, link_lost_at_ms });
    const ordered = unitsByImportance([
      unit('P-3', 'en_route'),
      unit('P-2', 'available'),
      unit('P-4', 'on_scene', 5),
      unit('P-1', 'available'),
    ]);
    expect(ordered.map((u) => u.call_sign)).toEqual(['P-4', 'P-1', 'P-2', 'P-3']);
  });

  it('masks the world outside the map data with a hole exactly over it', () => {
    const mask = outsideOf([24.8, 60.1, 25.1, 60.3]);
    const [outer, hole] = mask.geometry.coordinates;
    expect(outer[0]).toEqual([-180, -85]);
    expect(hole).toEqual([[24.8, 60.1], [24.8, 60.3], [25.1, 60.3], [25.1, 60.1], [24.8, 60.1]]);
  });

  it('has an icon and a name in both languages for every incident type intake offers', () => {
    expect(KINDS.filter((k) => !(k in KIND_SHAPES))).toEqual([]);
    expect(missingCodes(KINDS)).toEqual([]);
    expect(shapeOf('fire')).toBe('flame');
    expect(shapeOf('traffic_accident')).toBe('car');
    expect(shapeOf('unheard_of')).toBe('alert');
  });
});
