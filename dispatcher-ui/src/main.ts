//! The console's entry: login, then the shell (live map, role-aware tabs, alert banner) wired
//! to the one store and the live channel. Korean and English switch without a reload.

import './style.css';

import { ApiError, describe, get, post } from './api';
import { AlertBanner } from './alerts';
import { h, replace, say } from './dom';
import { lang, onLangChange, setLang, t, type Key } from './i18n';
import { LiveChannel } from './live';
import { LiveMap } from './map';
import { tabsFor, type Tab } from './roles';
import { store, TRAIL_MS } from './store';
import type { Role } from './types';
import { AccountView, passwordForm } from './views/account';
import { secondFactorSetup } from './views/second_factor';
import { AdminView } from './views/admin';
import { BroadcastView } from './views/broadcast';
import { IncidentPanel } from './views/incident';
import { IncidentQueue } from './views/incidents';
import { IntakeForm } from './views/intake';
import { SupervisorView } from './views/supervisor';
import { TimelineView } from './views/timeline';
import { UnitBoard } from './views/units';


const root = document.getElementById('app') as HTMLElement;
document.documentElement.lang = lang();


interface Me {
  username: string;
  role: Role;
  must_change_password?: boolean;
  /** The role needs a second factor the account has not set up yet. */
  second_factor_required?: boolean;
}

/** Kept across the reload that follows an ended session, to say why the login page shows. */
const SESSION_ENDED = 'dispatch.session-ended';

/** The console, or first the password change an admin's reset demands, or the second factor
 * the role needs. */
function enter(me: Me): void {
  if (me.must_change_password) showPasswordChange(me);
  else if (me.second_factor_required) showSecondFactorSetup(me);
  else startConsole(me);
}

/** A page before the console: the title, why it shows, and what must be done. */
function showGate(notice: Key, content: HTMLElement): void {
  replace(
    root,
    h(
      'div',
      { class: 'login-page' },
      h(
        'div',
        { class: 'login' },
        h('h1', {}, t('app_title')),
        h('p', { class: 'form-status error', role: 'alert' }, t(notice)),
        content,
        langSwitch(),
      ),
    ),
  );
}

function showSecondFactorSetup(me: Me): void {
  showGate(
    'second_factor_required_notice',
    secondFactorSetup(() => startConsole({ ...me, second_factor_required: false })),
  );
}

function showPasswordChange(me: Me): void {
  showGate('password_reset_required', passwordForm(() => enter({ ...me, must_change_password: false })));
}

async function boot(): Promise<void> {
  try {
    const me = await get<Me>('/api/me');
    enter(me);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) showLogin();
    else replace(root, h('div', { class: 'fatal' }, describe(e)));
  }
}

function langSwitch(): HTMLElement {
  return h(
    'button',
    {
      class: 'lang',
      'data-testid': 'lang',
      title: 'Language / 언어',
      onclick: () => setLang(lang() === 'ko' ? 'en' : 'ko'),
    },
    lang() === 'ko' ? 'English' : '한국어',
  );
}

let loginListening = false;

function showLogin(): void {
  if (!loginListening) {
    loginListening = true;
    onLangChange(() => {
      if (!store.me && document.querySelector('.login-page')) showLogin();
    });
  }
  const username = h('input', { id: 'login-username', autocomplete: 'username', required: true });
  const password = h('input', { id: 'login-password', type: 'password', autocomplete: 'current-password', required: true });
  const code = h('input', { id: 'login-code', autocomplete: 'one-time-code' });
  const codeRow = h('div', { class: 'login-code', hidden: true }, h('label', { for: 'login-code' }, t('login_code')), code);
  const status = h('div', { class: 'form-status', role: 'alert' });
  if (sessionStorage.getItem(SESSION_ENDED)) say(status, t('session_ended_notice'), true);
  const form = h(
    'form',
    {
      class: 'login',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        try {
          const me = await post<Me>('/api/login', {
            username: username.value.trim(),
            password: password.value,
            code: code.value.trim() || undefined,
          });
          sessionStorage.removeItem(SESSION_ENDED);
          enter(me);
        } catch (err) {
          if (err instanceof ApiError && err.code === 'second_factor_required') {
            codeRow.hidden = false;
            say(status, t('login_code'), false);
            code.focus();
            return;
          }
          code.value = '';
          say(status, `${t('login_failed')}: ${describe(err)}`, true);
          password.select();
        }
      },
    },
    h('h1', {}, t('app_title')),
    h('label', { for: 'login-username' }, t('username')),
    username,
    h('label', { for: 'login-password' }, t('password')),
    password,
    codeRow,
    h('button', { type: 'submit', class: 'primary', 'data-testid': 'login' }, t('login')),
    status,
    langSwitch(),
  );
  replace(root, h('div', { class: 'login-page' }, form));
  username.focus();
}

let live: LiveChannel | null = null;

/** Units whose recent trail is fetched after a snapshot (the rest draw theirs live). */
const TRAIL_UNITS = 200;

/** Fills each unit's recent trail from the server's samples (after every snapshot). */
async function loadTrails(): Promise<void> {
  const since = Date.now() - TRAIL_MS;
  const units = [...store.units.values()].filter((u) => u.position).slice(0, TRAIL_UNITS);
  await Promise.all(
    units.map(async (u) => {
      try {
        const points = await get<{ lat: number; lon: number; at_ms: number }[]>(
          `/api/units/${u.id}/trail?since_ms=${since}`,
        );
        for (const p of points) store.addTrailPoint(u.id, p.lon, p.lat, p.at_ms);
      } catch {
        /* a unit without samples keeps its live trail */
      }
    }),
  );
  store.changed('trails');
}

function startConsole(me: Me): void {
  store.me = me;
  const mapEl = h('div', { id: 'map', 'data-testid': 'map' });
  const panel = h('aside', { class: 'panel' });
  const nav = h('nav', { class: 'tabs' });
  const conn = h('span', { class: 'conn', 'data-testid': 'connection', role: 'status' });
  const counters = h('span', { class: 'counters', 'data-testid': 'attention-counters' });
  const header = h('header', { class: 'top' });
  const footer = h('footer', {});
  const alerts = new AlertBanner(store);
  replace(root, header, alerts.el, h('main', {}, mapEl, panel), footer);
  const map = new LiveMap(mapEl, store);

  let current: Tab = 'console';

  function buildViews() {
    const timeline = new TimelineView();
    const openTimeline = (id: number) => {
      current = 'timeline';
      render();
      void timeline.show(id);
    };
    const intake = new IntakeForm({
      showPick: (lat, lon, fly) => map.showPick(lat, lon, fly),
      created: (incident) => {
        store.learnCreated({ incident });
        store.select(incident.id);
        map.clearPick();
      },
      joined: (incidentId) => {
        store.select(incidentId);
        map.clearPick();
      },
    });
    const incident = new IncidentPanel(store, openTimeline);
    const queue = new IncidentQueue(store);
    const units = new UnitBoard(store);
    const broadcast = new BroadcastView(map);
    const supervisor = new SupervisorView(openTimeline);
    const admin = new AdminView();
    const account = new AccountView();
    return { timeline, intake, incident, queue, units, broadcast, supervisor, admin, account };
  }

  function renderHeader(): void {
    const tabs = tabsFor(me.role);
    replace(
      nav,
      tabs.map((tab, i) =>
        h(
          'button',
          {
            class: tab === current ? 'active' : '',
            'data-tab': tab,
            title: `Alt+${i + 1}`,
            onclick: () => {
              current = tab;
              render();
            },
          },
          t(`tab_${tab}` as Key),
        ),
      ),
    );
    replace(
      header,
      h('h1', {}, t('app_title')),
      nav,
      counters,
      conn,
      langSwitch(),
      h('span', { class: 'me' }, `${me.username} (${me.role})`),
      h(
        'button',
        {
          onclick: async () => {
            live?.stop();
            await post('/api/logout').catch(() => undefined);
            location.reload();
          },
        },
        t('logout'),
      ),
    );
    renderConnection();
    renderCounters();
    replace(footer, t('shortcuts'));
  }

  /** How many reasons for attention are open: severe ones, then notices. */
  function renderCounters(): void {
    const open = [...store.attention.values()];
    const severe = open.filter((a) => a.severity === 'severe').length;
    counters.dataset.severe = String(severe);
    replace(
      counters,
      h('span', { class: severe > 0 ? 'severe' : '' }, `⚠ ${severe} ${t('needs_attention')}`),
      ` · ${open.length - severe} ${t('notices')}`,
    );
  }
  store.subscribe((what) => {
    if (what.has('attention')) renderCounters();
    if (what.has('alerts') || what.has('incidents')) centreOnEmergencies();
  });

  /**
   * A new emergency takes the map to the officer and selects its incident (once that incident
   * is known here: the alert can come before the live channel's snapshot).
   */
  const emergenciesShown = new Set<number>();
  function centreOnEmergencies(): void {
    for (const a of store.alerts.values()) {
      if (a.kind !== 'officer_emergency' || emergenciesShown.has(a.event_id)) continue;
      const incidentKnown = a.incident_id !== null && store.incidents.has(a.incident_id);
      if (a.incident_id !== null && !incidentKnown) continue;
      emergenciesShown.add(a.event_id);
      const d = a.detail as { lat?: number | null; lon?: number | null };
      if (typeof d.lat === 'number' && typeof d.lon === 'number') map.flyTo(d.lat, d.lon);
      if (a.incident_id !== null) store.select(a.incident_id);
    }
  }

  function renderConnection(): void {
    conn.textContent = t(store.connection === 'online' ? 'online' : store.connection === 'offline' ? 'offline' : 'connecting');
    conn.className = `conn ${store.connection}`;
    document.body.classList.toggle('is-offline', store.connection === 'offline');
  }

  function render(): void {
    renderHeader();
    if (current !== 'timeline') views.timeline.close();
    // The supervisor's, the admin's and the report's tables take the whole width (style.css);
    // the live map comes back at its size.
    document.body.dataset.view = current;
    map.map.resize();
    switch (current) {
      case 'console':
        replace(panel, views.intake.el, views.incident.el, views.queue.el);
        views.incident.render();
        views.queue.render();
        break;
      case 'units':
        replace(panel, views.units.el);
        views.units.render();
        break;
      case 'broadcast':
        replace(panel, views.broadcast.el);
        void views.broadcast.loadSent();
        break;
      case 'supervisor':
        replace(panel, views.supervisor.el);
        void views.supervisor.load();
        break;
      case 'admin':
        replace(panel, views.admin.el);
        void views.admin.load();
        break;
      case 'account':
        replace(panel, views.account.el);
        void views.account.load();
        break;
      case 'timeline':
        replace(panel, h('button', { class: 'back', onclick: () => { current = 'console'; render(); } }, '←'), views.timeline.el);
        break;
    }
  }

  const views = buildViews();
  map.onPick = (lat, lon) => {
    if (current !== 'console') return;
    void views.intake.pick(lat, lon);
  };
  map.onSelectIncident = (id) => {
    current = 'console';
    render();
    store.select(id);
  };
  store.subscribe((what) => {
    if (what.has('me')) void loadTrails();
    // Delivery and acknowledgement counts of broadcasts move with their events.
    if (what.has('events') && current === 'broadcast' && store.recent[0]?.kind.includes('broadcast')) {
      void views.broadcast.loadSent();
    }
    if (what.has('connection')) renderConnection();
    if (what.has('selection')) {
      const i = store.selectedIncident === null ? undefined : store.incidents.get(store.selectedIncident);
      if (i) map.flyTo(i.lat, i.lon);
    }
  });
  // Views hold their texts: switching language rebuilds the page (the session stays).
  onLangChange(() => location.reload());
  document.addEventListener('keydown', (e) => {
    if (!e.altKey) {
      if (e.key === 'Escape' && current === 'timeline') {
        current = 'console';
        render();
      }
      return;
    }
    const tabs = tabsFor(me.role);
    if (e.key === 'n' || e.key === 'N' || e.code === 'KeyN') {
      e.preventDefault();
      current = 'console';
      render();
      views.intake.focus();
    } else if (e.key === 'd' || e.key === 'D' || e.code === 'KeyD') {
      e.preventDefault();
      void views.incident.dispatchPlan();
    } else if (/^Digit[1-9]$/.test(e.code)) {
      const tab = tabs[Number(e.code.slice(5)) - 1];
      if (tab) {
        e.preventDefault();
        current = tab;
        render();
      }
    }
  });
  render();
  views.intake.focus();
  live = new LiveChannel(store, {
    onSessionEnded: () => {
      sessionStorage.setItem(SESSION_ENDED, '1');
      location.reload();
    },
  });
  live.start();
  void alerts.load();
}

void boot();
