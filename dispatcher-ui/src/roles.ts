//! Which screens each role sees. The server enforces the same roles on every request; this only
//! keeps the console from offering what would be refused.

import type { Role } from './types';

export type Tab = 'console' | 'units' | 'broadcast' | 'supervisor' | 'admin' | 'account' | 'timeline';

/** Tabs a role sees, in order (the timeline opens from an incident, for every role; everyone
 * has their own account: password and sessions). */
export function tabsFor(role: Role): Tab[] {
  const tabs: Tab[] = ['console', 'units', 'broadcast'];
  if (role === 'supervisor' || role === 'admin') tabs.push('supervisor');
  if (role === 'admin') tabs.push('admin');
  tabs.push('account');
  return tabs;
}
