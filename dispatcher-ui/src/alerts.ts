//! Escalations and severe reasons for attention: an unmissable banner and a repeating tone
//! (WebAudio, made here, no sound file) until an operator acknowledges each one or the reason
//! goes away. Notices (a cleared incident left open, an unread text) only order the queue.

import { describe, get, post } from './api';
import { h, replace } from './dom';
import { t } from './i18n';
import type { Store } from './store';
import type { Alert, Attention, AttentionReason } from './types';

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

/** The words for a reason for attention. */
export function reasonText(reason: AttentionReason): string {
  return t(`attention_${reason}`);
}

/** The banner's title for an alert of `kind`. */
function bannerTitle(kind: string): 'emergency' | 'attention' | 'escalation' {
  if (kind === 'officer_emergency') return 'emergency';
  return kind === 'attention_raised' ? 'attention' : 'escalation';
}

/** Whether an alert sounds the alarm: every escalation, and the severe reasons for attention. */
export function isSevere(a: Alert): boolean {
  return a.kind !== 'attention_raised' || (a.detail as { severity?: string }).severity === 'severe';
}

/** What the banner says about one alert. */
export function alertText(a: Alert): string {
  if (a.kind === 'officer_emergency') {
    const d = a.detail as { call_sign?: string };
    const incident = a.incident_id ? ` #${a.incident_id}` : '';
    return `${d.call_sign ?? ''} ${t('officer_emergency')}${incident}`.trim();
  }
  if (a.kind === 'attention_raised') {
    const d = a.detail as { reason: AttentionReason; call_sign?: string; why?: string | null };
    const incident = a.incident_id ? `#${a.incident_id} ` : '';
    const who = d.call_sign ? ` ${d.call_sign}` : '';
    const why = d.why ? ` (${d.why})` : '';
    return `${incident}${reasonText(d.reason)}${who}${why}`;
  }
  const d = a.detail as {
    stage?: string;
    call_sign?: string;
    waited_ms?: number;
    proposed?: { call_sign?: string } | null;
  };
  const waited = d.waited_ms !== undefined ? ` ${Math.round(d.waited_ms / 1000)} s` : '';
  const stage =
    d.stage === 'no_receipt'
      ? t('no_receipt')
      : d.stage === 'no_acknowledgement'
        ? t('no_acknowledgement')
        : (d.stage ?? a.kind);
  const proposed = d.proposed?.call_sign ? ` · ${t('propose')}: ${d.proposed.call_sign}` : '';
  const offline = (a.detail as { device_connected?: boolean }).device_connected === false ? ` · ${t('tablet_offline')}` : '';
  const incident = a.incident_id ? `#${a.incident_id} ` : '';
  return `${incident}${d.call_sign ?? ''} ${stage}${waited}${offline}${proposed}`.trim();
}

export class AlertBanner {
  el = h('div', { class: 'alert-banner', role: 'alert', 'data-testid': 'alerts', hidden: true });
  private audio: AudioContext | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private store: Store) {
    store.subscribe((what) => {
      if (what.has('alerts')) this.render();
      // A new snapshot (after a reconnect): what happened meanwhile is read again.
      if (what.has('me')) void this.load();
    });
    // Browsers allow sound once the page has had a gesture (the login click counts); after a
    // reload the context starts suspended and every later click or key resumes it.
    const arm = () => {
      if (!this.audio && typeof AudioContext !== 'undefined') this.audio = new AudioContext();
      if (this.audio?.state === 'suspended') void this.audio.resume();
    };
    arm();
    document.addEventListener('pointerdown', arm, { once: false });
    document.addEventListener('keydown', arm, { once: false });
  }

  /** Loads unacknowledged alerts and every open reason for attention. */
  async load(): Promise<void> {
    try {
      const [alerts, attention] = await Promise.all([
        get<Alert[]>('/api/alerts'),
        get<Attention[]>('/api/attention'),
      ]);
      this.store.setAlerts(alerts);
      this.store.setAttention(attention);
    } catch {
      /* offline: the next snapshot loads them again */
    }
  }

  private render(): void {
    const emergencyFirst = (a: Alert) => (a.kind === 'officer_emergency' ? 0 : 1);
    const alerts = [...this.store.alerts.values()]
      .filter(isSevere)
      .sort((a, b) => emergencyFirst(a) - emergencyFirst(b) || a.event_id - b.event_id);
    this.el.hidden = alerts.length === 0;
    replace(
      this.el,
      alerts.map((a) =>
        h(
          'div',
          { class: a.kind === 'officer_emergency' ? 'alert-row emergency' : 'alert-row', 'data-kind': a.kind },
          h('strong', {}, `⚠ ${t(bannerTitle(a.kind))}`),
          h(
            'span',
            {
              class: 'alert-text',
              onclick: () => {
                if (a.incident_id !== null && this.store.incidents.has(a.incident_id)) this.store.select(a.incident_id);
              },
            },
            alertText(a),
          ),
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
    this.el.dataset.alarm = alerts.length > 0 ? 'on' : 'off';
    if (alerts.length > 0 && !this.timer) {
      beep(this.audio);
      this.timer = setInterval(() => beep(this.audio), 2500);
    } else if (alerts.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
