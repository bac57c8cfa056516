//! Escalations: an unmissable banner and a repeating tone (WebAudio, made here, no sound file)
//! until an operator acknowledges each one.

import { describe, get, post } from './api';
import { h, replace } from './dom';
import { t } from './i18n';
import type { Store } from './store';
import type { Alert } from './types';

/** Plays two short tones; returns false when audio is unavailable. */
export function beep(ctx: AudioContext | null): boolean {
  if (!ctx) return false;
  const now = ctx.currentTime;
  [0, 0.25].forEach((offset, i) => {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'square';
    osc.frequency.value = i === 0 ? 880 : 660;
    gain.gain.setValueAtTime(0.0001, now + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, now + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.2);
    osc.connect(gain).connect(ctx.destination);
    osc.start(now + offset);
    osc.stop(now + offset + 0.22);
  });
  return true;
}

/** What the banner says about one escalation. */
export function alertText(a: Alert): string {
  const d = a.detail as {
    stage?: string;
    call_sign?: string;
    waited_ms?: number;
    proposed?: { call_sign?: string } | null;
  };
  const waited = d.waited_ms !== undefined ? ` ${Math.round(d.waited_ms / 1000)} s` : '';
  const stage =
    d.stage === 'no_receipt'
      ? 'no receipt / 수신 없음'
      : d.stage === 'no_acknowledgement'
        ? 'not acknowledged / 확인 없음'
        : (d.stage ?? a.kind);
  const proposed = d.proposed?.call_sign ? ` → ${d.proposed.call_sign}?` : '';
  const incident = a.incident_id ? `#${a.incident_id} ` : '';
  return `${incident}${d.call_sign ?? ''} ${stage}${waited}${proposed}`.trim();
}

export class AlertBanner {
  el = h('div', { class: 'alert-banner', role: 'alert', 'data-testid': 'alerts', hidden: true });
  private audio: AudioContext | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private store: Store) {
    store.subscribe((what) => {
      if (what.has('alerts')) this.render();
    });
    // Browsers allow sound only after a gesture: arm the audio context on the first one.
    const arm = () => {
      if (!this.audio && typeof AudioContext !== 'undefined') this.audio = new AudioContext();
      void this.audio?.resume();
    };
    document.addEventListener('pointerdown', arm, { once: false });
    document.addEventListener('keydown', arm, { once: false });
  }

  /** Loads unacknowledged alerts; a server without the alerts API simply has none. */
  async load(): Promise<void> {
    try {
      this.store.setAlerts(await get<Alert[]>('/api/alerts'));
    } catch {
      /* 404 until the server has escalations */
    }
  }

  private render(): void {
    const alerts = [...this.store.alerts.values()].sort((a, b) => a.event_id - b.event_id);
    this.el.hidden = alerts.length === 0;
    replace(
      this.el,
      alerts.map((a) =>
        h(
          'div',
          { class: 'alert-row' },
          h('strong', {}, `⚠ ${t('escalation')}`),
          h('span', { class: 'alert-text' }, alertText(a)),
          h(
            'button',
            {
              class: 'ack',
              onclick: async (ev: Event) => {
                const btn = ev.currentTarget as HTMLButtonElement;
                btn.disabled = true;
                try {
                  await post(`/api/alerts/${a.event_id}/acknowledge`);
                  this.store.removeAlert(a.event_id);
                } catch (e) {
                  btn.disabled = false;
                  btn.title = describe(e);
                  btn.textContent = `${t('acknowledge')} — ${describe(e)}`;
                }
              },
            },
            t('acknowledge'),
          ),
        ),
      ),
    );
    if (alerts.length > 0 && !this.timer) {
      beep(this.audio);
      this.timer = setInterval(() => beep(this.audio), 2500);
    } else if (alerts.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
