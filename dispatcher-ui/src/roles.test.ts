import { describe, expect, it } from 'vitest';

import { tabsFor } from './roles';

describe('tabsFor', () => {
  it('offers each role only its screens', () => {
    expect(tabsFor('operator')).toEqual(['console', 'units', 'broadcast', 'account']);
    expect(tabsFor('supervisor')).toEqual(['console', 'units', 'broadcast', 'supervisor', 'account']);
    expect(tabsFor('admin')).toEqual(['console', 'units', 'broadcast', 'supervisor', 'admin', 'account']);
  });
});
