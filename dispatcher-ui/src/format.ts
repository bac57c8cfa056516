//! Formatting of durations, distances and times for the operator (short, unambiguous).

/** `m:ss` under an hour, `h:mm:ss` above; negative durations count as zero. */
export function elapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** Metres below 1 km, otherwise km with one decimal. */
export function distance(m: number): string {
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`;
}

/** Seconds as a rounded `m:ss` ETA. */
export function eta(s: number): string {
  return elapsed(Math.round(s) * 1000);
}

/** A local wall-clock time `HH:MM:SS`. */
export function clock(ms: number): string {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/** A duration in seconds as `m:ss` (`h:mm:ss` from an hour), or a dash when there is no figure. */
export function duration(s: number | null | undefined): string {
  return s === null || s === undefined ? '—' : elapsed(Math.round(s) * 1000);
}

/** A local date and time, `YYYY-MM-DD HH:MM:SS`: records outlive the day they were made. */
export function dateTime(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${clock(ms)}`;
}

/** Colour of a unit status on the map and the board. */
export function statusColour(status: string): string {
  switch (status) {
    case 'available':
      return '#2e9d4f';
    case 'assigned':
      return '#d08a00';
    case 'en_route':
      return '#1f6fd1';
    case 'on_scene':
      return '#7b3fc4';
    default:
      return '#6b6f76';
  }
}

/** Colour of an incident priority (0 most urgent). */
export function priorityColour(p: number): string {
  return ['#c4161c', '#e0571b', '#e3a008', '#3f7fbf', '#6b6f76'][p] ?? '#6b6f76';
}

/** Order states in which the unit has not yet confirmed that the officer saw the order. */
export function awaitingAcknowledgement(state: string): boolean {
  return state === 'queued' || state === 'delivered' || state === 'displayed';
}

/** Order states that are over. */
export function finished(state: string): boolean {
  return ['declined', 'completed', 'cancelled', 'expired'].includes(state);
}
