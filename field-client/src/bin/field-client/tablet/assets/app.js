// Field tablet UI: long-polls /api/state, shows one full-screen alert at a time (with a sound
// that repeats until tapped), and posts the officer's actions. Text is only ever set through
// textContent. Korean and English; day and night themes.
'use strict';

const WORDS = {
  en: {
    online: 'ONLINE', offline: 'OFFLINE', queued: 'queued', night: 'Night', day: 'Day',
    revoked_title: 'Device revoked', revoked_text: 'The server refused this tablet. Its data was erased. Ask an administrator for a new enrolment code.',
    navigate: 'Navigate', accept: 'Accept', decline: 'Decline', no_order: 'No active order.',
    status: 'Status', en_route: 'En route', on_scene: 'On scene', cleared: 'Cleared',
    out_of_service: 'Out of service', available: 'Available', broadcasts: 'Broadcast alerts',
    messages: 'Messages', write: 'Message to the control room', send: 'Send', confirm: 'Tap to confirm',
    decline_why: 'Why decline?', reason_busy: 'Busy with another task', reason_too_far: 'Too far away',
    reason_vehicle: 'Vehicle problem', other_reason: 'Other reason', back: 'Back',
    new_order: 'NEW ORDER', broadcast: 'BROADCAST', text: 'MESSAGE', cancel: 'ORDER WITHDRAWN',
    cancelled: 'Cancelled by the control room', expired: 'Expired', priority: 'P',
    accepted: 'Accepted', declined: 'Declined', waiting: 'waiting to send', sent: 'sent', rejected: 'refused',
    decide: 'Accept or decline this order.', from: 'from', expires: 'expires', you: 'You',
    no_ui: 'Tablet service not responding', no_key: 'Open the address field-client printed', need_reason: 'Give a reason.', order: 'order',
    emergency_hold: 'EMERGENCY — hold 2 s', emergency_holding: 'Keep holding…',
    emergency_sent: 'EMERGENCY SENT — help is coming',
    update: 'INCIDENT UPDATED', another_caller: 'Another caller', callback: 'Call back',
    changed_kind: 'type', changed_priority: 'priority', changed_location: 'location',
    changed_address: 'address', changed_caller: 'caller', changed_callback: 'callback number',
    changed_notes: 'notes', changed_narrative: 'new information',
    danger: 'DANGER', caution: 'Caution', info: 'Note',
  },
  ko: {
    emergency_hold: '긴급 — 2초간 누르기', emergency_holding: '계속 누르세요…',
    emergency_sent: '긴급 신고 전송됨 — 지원 출동',
    online: '연결됨', offline: '오프라인', queued: '전송 대기', night: '야간', day: '주간',
    revoked_title: '단말기 사용 중지됨', revoked_text: '서버가 이 태블릿을 거부했습니다. 저장된 자료는 삭제되었습니다. 관리자에게 새 등록 코드를 요청하십시오.',
    navigate: '길 안내', accept: '수락', decline: '거절', no_order: '진행 중인 지령이 없습니다.',
    status: '상태', en_route: '출동 중', on_scene: '현장 도착', cleared: '상황 종료',
    out_of_service: '업무 불가', available: '출동 가능', broadcasts: '일제 경보',
    messages: '메시지', write: '상황실에 보낼 메시지', send: '보내기', confirm: '눌러서 확인',
    decline_why: '거절 사유', reason_busy: '다른 업무 수행 중', reason_too_far: '거리가 너무 멂',
    reason_vehicle: '차량 문제', other_reason: '기타 사유', back: '돌아가기',
    new_order: '새 출동 지령', broadcast: '일제 경보', text: '메시지', cancel: '지령 취소',
    cancelled: '상황실에서 취소함', expired: '시간 초과', priority: '순위 ',
    accepted: '수락함', declined: '거절함', waiting: '전송 대기', sent: '전송됨', rejected: '거부됨',
    decide: '이 지령을 수락하거나 거절하십시오.', from: '보낸 사람', expires: '만료', you: '나',
    no_ui: '태블릿 서비스 응답 없음', no_key: 'field-client가 출력한 주소로 여십시오', need_reason: '사유를 입력하십시오.', order: '지령',
    update: '사건 정보 변경', another_caller: '추가 신고자', callback: '회신',
    changed_kind: '유형', changed_priority: '긴급도', changed_location: '위치',
    changed_address: '주소', changed_caller: '신고자', changed_callback: '회신 번호',
    changed_notes: '메모', changed_narrative: '추가 정보',
    danger: '위험', caution: '주의', info: '참고',
  },
};

const $ = (id) => document.getElementById(id);
// Names of the incident types the console offers, in both languages (/kinds.json, the
// protocol's one list); other types show as their code.
let kindNames = {};
const kindName = (k) => kindNames[k]?.[lang] ?? String(k).replace(/_/g, ' ');
let lang = localStorage.getItem('lang') || (navigator.language.startsWith('ko') ? 'ko' : 'en');
let theme = localStorage.getItem('theme') || 'day';
let state = null;
let shownAlert = null;       // message_id of the alert on screen
const displayedSent = new Set();
let declineOrder = null;

function t(key) { return (WORDS[lang] && WORDS[lang][key]) || WORDS.en[key] || key; }

function applyWords() {
  document.documentElement.lang = lang;
  document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll('[data-i18n-placeholder]').forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  $('lang').textContent = lang === 'ko' ? 'English' : '한국어';
  $('theme').textContent = theme === 'day' ? t('night') : t('day');
}

function applyTheme() { document.body.className = theme; applyWords(); }

// ---- sound (WebAudio, no files) ----
let audio = null;
let soundTimer = null;
function beep() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === 'suspended') audio.resume();
    [880, 660].forEach((freq, i) => {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      osc.type = 'square';
      gain.gain.value = 0.25;
      osc.connect(gain).connect(audio.destination);
      const start = audio.currentTime + i * 0.25;
      osc.start(start);
      osc.stop(start + 0.22);
    });
  } catch (e) { /* no audio device: the screen still flashes */ }
}
function startSound(repeat) {
  stopSound();
  beep();
  if (repeat) soundTimer = setInterval(beep, 2000);
}
function stopSound() { if (soundTimer) clearInterval(soundTimer); soundTimer = null; }

// ---- server calls ----
// The key made at this start of field-client arrives in the address (#k=…); it is kept for
// this tab only and taken out of the address bar. Every API call sends it.
const KEY = (() => {
  const m = /^#k=([0-9a-f]+)$/.exec(location.hash);
  if (m) {
    sessionStorage.setItem('tablet-key', m[1]);
    history.replaceState(null, '', location.pathname);
  }
  return sessionStorage.getItem('tablet-key') || '';
})();

async function post(path, body) {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-tablet-key': KEY }, body: JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) { notice(data.error || res.statusText); throw new Error(data.error || res.statusText); }
  return data;
}

function notice(text) {
  const p = document.createElement('p');
  p.textContent = text;
  $('notices').appendChild(p);
  setTimeout(() => p.remove(), 8000);
}

async function poll() {
  let version = null;
  for (;;) {
    try {
      const url = version === null ? '/api/state' : `/api/state?after=${version}`;
      const res = await fetch(url, { cache: 'no-store', headers: { 'x-tablet-key': KEY } });
      if (res.status === 401) {
        // An old key (field-client restarted): only the newly printed address helps.
        $('conn').className = 'conn offline';
        $('conn').textContent = t('no_key');
        await new Promise((r) => setTimeout(r, 5000));
        continue;
      }
      if (!res.ok) throw new Error(res.statusText);
      state = await res.json();
      version = state.version;
      render();
    } catch (e) {
      $('conn').className = 'conn offline';
      $('conn').textContent = t('no_ui');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

// ---- derived state ----
const kindOf = (m) => m.body.kind;
function pendingFrames() { return state.pending_actions || []; }
function localDecision(order) {
  if (order.decision) return order.decision;
  for (const f of pendingFrames()) {
    if (f.order_id === order.body.order_id && f.type === 'accept') return 'accepted';
    if (f.order_id === order.body.order_id && f.type === 'decline') return 'declined';
  }
  return null;
}
function activeOrder() {
  const orders = state.messages.filter((m) => kindOf(m) === 'order');
  for (let i = orders.length - 1; i >= 0; i--) {
    const o = orders[i];
    if (o.withdrawn) continue;
    if (localDecision(o) === 'declined' || o.last_status === 'cleared') continue;
    return o;
  }
  return null;
}
function nextAlert() {
  return state.messages.find((m) => {
    if (m.acknowledged_at_ms) return false;
    if (kindOf(m) === 'order' && (m.withdrawn || localDecision(m))) return false;
    return true;
  }) || null;
}
function orderById(id) {
  return state.messages.find((m) => kindOf(m) === 'order' && m.body.order_id === id);
}
// The incident as the control room last sent it: the newest update, else the order's own copy.
function incidentNow(incident) {
  for (let i = state.messages.length - 1; i >= 0; i--) {
    const m = state.messages[i];
    if (kindOf(m) === 'incident_update' && m.body.incident.id === incident.id) return m.body.incident;
  }
  return incident;
}
function entryText(e) {
  return e.kind === 'caller'
    ? `${t('another_caller')}: ${[e.caller, e.callback, e.text].filter(Boolean).join(' · ')}`
    : e.text || '';
}
function hazardText(h) { return `${t(h.severity)} · ${h.label}: ${h.text}`; }
function elapsed(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
function place(incident) { return incident.address || `${incident.lat.toFixed(5)}, ${incident.lon.toFixed(5)}`; }
function time(ms) { return ms ? new Date(ms).toLocaleTimeString(lang === 'ko' ? 'ko-KR' : 'en-GB', { hour: '2-digit', minute: '2-digit' }) : ''; }

// ---- rendering ----
function render() {
  if (!state) return;
  $('callsign').textContent = state.call_sign;
  const conn = $('conn');
  if (state.online) {
    conn.className = 'conn online';
    conn.textContent = t('online') + (state.pending ? ` · ${state.pending} ${t('queued')}` : '');
  } else {
    conn.className = 'conn offline';
    conn.textContent = `${t('offline')} · ${state.pending} ${t('queued')}`;
  }
  conn.dataset.online = state.online ? 'yes' : 'no';
  conn.dataset.pending = String(state.pending);
  if (state.revoked) { renderRevoked(); return; }
  $('revoked').hidden = true;
  renderOrder();
  renderStatuses();
  renderBroadcasts();
  renderMessages();
  renderRefusals();
  renderAlert();
}

// Actions the server refused lately (for example a decision on an order that was withdrawn).
function renderRefusals() {
  const box = $('refusals');
  const recent = (state.notices || []).filter((n) => Date.now() - n.at_ms < 60000);
  box.replaceChildren(...recent.map((n) => {
    const p = document.createElement('p');
    p.textContent = `${t('rejected')}: ${n.message} (${n.code})`;
    return p;
  }));
}

function renderRevoked() {
  stopSound();
  $('alert').hidden = true;
  document.querySelectorAll('main > section').forEach((s) => { s.hidden = true; });
  $('revoked').hidden = false;
  $('revoked-detail').textContent = state.revoked;
}

function renderOrder() {
  const order = activeOrder();
  $('order-card').hidden = !order;
  $('idle').hidden = !!order;
  if (!order) return;
  const o = order.body;
  const incident = incidentNow(o.incident);
  const card = $('order-card');
  card.dataset.orderId = String(o.order_id);
  card.dataset.receivedMs = String(order.received_at_ms);
  $('order-priority').textContent = t('priority') + incident.priority;
  $('order-kind').textContent = kindName(incident.kind);
  $('order-incident').textContent = `#${incident.id}`;
  $('order-address').textContent = place(incident);
  $('order-caller-name').textContent = incident.caller || '';
  const callback = $('order-callback');
  callback.textContent = incident.callback ? `☎ ${incident.callback}` : '';
  if (incident.callback) callback.href = `tel:${incident.callback.replace(/[^0-9+#*,]/g, '')}`;
  else callback.removeAttribute('href');
  $('order-caller').hidden = !incident.caller && !incident.callback;
  $('order-notes').textContent = incident.notes || '';
  $('order-hazards').replaceChildren(...(incident.hazards || []).map((h) => {
    const li = document.createElement('li');
    li.className = h.severity;
    li.textContent = hazardText(h);
    return li;
  }));
  $('order-narrative').replaceChildren(...(incident.narrative || []).map((e) => {
    const li = document.createElement('li');
    li.className = `entry-${e.kind}`;
    const text = document.createElement('div');
    text.textContent = entryText(e);
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${e.author} · ${time(e.at_ms)}`;
    li.append(text, meta);
    return li;
  }));
  renderElapsed();
  $('order-withdrawn').hidden = true;
  const label = encodeURIComponent(incident.address || kindName(incident.kind));
  $('navigate').href = `geo:${incident.lat},${incident.lon}?q=${incident.lat},${incident.lon}(${label})`;
  const decision = localDecision(order);
  $('decide').hidden = !!decision;
  const stateText = decision
    ? `${t(decision)}${order.decision ? '' : ` (${t('waiting')})`}${order.last_status ? ` · ${t(order.last_status)}` : ''}`
    : t('decide');
  $('order-state').textContent = stateText;
}

// Time since the order reached this tablet, ticking every second.
function renderElapsed() {
  const since = Number($('order-card').dataset.receivedMs);
  $('order-elapsed').textContent = since ? elapsed(Date.now() - since) : '';
}

function renderStatuses() {
  const order = activeOrder();
  const accepted = order && localDecision(order) === 'accepted';
  const current = (order && order.last_status) || state.unit_status;
  document.querySelectorAll('button.status').forEach((b) => {
    const s = b.dataset.status;
    const needsOrder = s === 'en_route' || s === 'on_scene' || s === 'cleared';
    b.disabled = needsOrder && !accepted;
    b.classList.toggle('current', s === current);
  });
  $('unit-status').textContent = state.unit_status ? t(state.unit_status) : '';
}

function renderBroadcasts() {
  const list = $('broadcasts');
  const items = state.messages.filter((m) => kindOf(m) === 'broadcast').reverse();
  $('broadcast-panel').hidden = items.length === 0;
  list.replaceChildren(...items.map((m) => {
    const b = m.body;
    const li = document.createElement('li');
    const h = document.createElement('strong');
    h.textContent = `${b.severity} · ${b.urgency} — ${b.headline}`;
    const p = document.createElement('div');
    p.textContent = [b.description, b.instruction, b.area && b.area.area_desc].filter(Boolean).join(' — ');
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${t('from')} ${b.sender} · ${time(b.sent_ms)}${b.expires_ms ? ` · ${t('expires')} ${time(b.expires_ms)}` : ''}`;
    li.append(h, p, meta);
    return li;
  }));
}

function renderMessages() {
  const rows = [];
  for (const m of state.messages) {
    if (kindOf(m) === 'text') rows.push({ at: m.received_at_ms, dir: 'in', who: m.body.from, text: m.body.text });
    if (kindOf(m) === 'cancel') {
      const order = orderById(m.body.order_id);
      const what = order ? `${kindName(order.body.incident.kind)}, ${place(order.body.incident)}` : `#${m.body.order_id}`;
      rows.push({ at: m.received_at_ms, dir: 'in', who: t('cancel'), text: `${what}: ${t(m.body.reason)}${m.body.detail ? ` — ${m.body.detail}` : ''}` });
    }
  }
  for (const s of state.sent_texts) {
    rows.push({ at: s.created_at_ms, dir: 'out', who: t('you'), text: s.text, state: s.state });
  }
  rows.sort((a, b) => a.at - b.at);
  $('messages').replaceChildren(...rows.map((r) => {
    const li = document.createElement('li');
    li.className = r.dir;
    const body = document.createElement('div');
    body.textContent = r.text;
    const meta = document.createElement('div');
    meta.className = 'meta';
    const sent = r.state ? ` · ${t(r.state === 'pending' ? 'waiting' : r.state)}` : '';
    meta.textContent = `${r.who} · ${time(r.at)}${sent}`;
    li.append(body, meta);
    return li;
  }));
}

function renderAlert() {
  const m = nextAlert();
  const box = $('alert');
  if (!m) {
    box.hidden = true;
    shownAlert = null;
    stopSound();
    return;
  }
  const kind = kindOf(m);
  box.hidden = false;
  box.className = `alert ${kind}`;
  box.dataset.messageId = m.message_id;
  if (kind === 'order') {
    $('alert-kind').textContent = `${t('new_order')} · ${t('priority')}${m.body.incident.priority}`;
    $('alert-title').textContent = kindName(m.body.incident.kind);
    $('alert-where').textContent = place(m.body.incident);
    // A hazard at the place comes before anything else the officer reads.
    const hazards = (m.body.incident.hazards || []).map(hazardText);
    $('alert-detail').textContent = [...hazards, m.body.incident.notes].filter(Boolean).join(' — ');
  } else if (kind === 'broadcast') {
    $('alert-kind').textContent = `${t('broadcast')} · ${m.body.severity} · ${m.body.urgency}`;
    $('alert-title').textContent = m.body.headline;
    $('alert-where').textContent = (m.body.area && m.body.area.area_desc) || '';
    $('alert-detail').textContent = [m.body.description, m.body.instruction].filter(Boolean).join(' — ');
  } else if (kind === 'text') {
    $('alert-kind').textContent = `${t('text')} · ${m.body.from}`;
    $('alert-title').textContent = m.body.text;
    $('alert-where').textContent = '';
    $('alert-detail').textContent = '';
  } else if (kind === 'incident_update') {
    const i = m.body.incident;
    const entries = i.narrative || [];
    const newest = entries[entries.length - 1];
    $('alert-kind').textContent = `${t('update')} · ${t('priority')}${i.priority} · #${i.id}`;
    $('alert-title').textContent = m.body.changed.map((c) => t(`changed_${c}`)).join(', ');
    $('alert-where').textContent = `${kindName(i.kind)} · ${place(i)}`;
    $('alert-detail').textContent = m.body.changed.includes('narrative') && newest ? entryText(newest) : (i.notes || '');
  } else if (kind === 'cancel') {
    const order = orderById(m.body.order_id);
    $('alert-kind').textContent = t('cancel');
    $('alert-title').textContent = order ? kindName(order.body.incident.kind) : `#${m.body.order_id}`;
    $('alert-where').textContent = order ? place(order.body.incident) : '';
    $('alert-detail').textContent = `${t(m.body.reason)}${m.body.detail ? ` — ${m.body.detail}` : ''}`;
  }
  if (shownAlert !== m.message_id) {
    shownAlert = m.message_id;
    startSound(kind === 'order' || kind === 'broadcast' || kind === 'cancel' || kind === 'incident_update');
  }
  if (!m.displayed_at_ms && !displayedSent.has(m.message_id)) {
    displayedSent.add(m.message_id);
    post('/api/seen', { message_id: m.message_id, acknowledge: false }).catch(() => displayedSent.delete(m.message_id));
  }
}

// ---- actions ----
function wire() {
  $('alert-ack').addEventListener('click', async () => {
    const id = $('alert').dataset.messageId;
    stopSound();
    if (id) await post('/api/seen', { message_id: id, acknowledge: true }).catch(() => {});
  });
  $('accept').addEventListener('click', () => {
    const id = Number($('order-card').dataset.orderId);
    post('/api/accept', { order_id: id }).catch(() => {});
  });
  $('decline').addEventListener('click', () => {
    declineOrder = Number($('order-card').dataset.orderId);
    $('decline-reason').value = '';
    $('decline-dialog').hidden = false;
  });
  // One tap on a reason declines with its code; anything else is `other` in the officer's words.
  document.querySelectorAll('button.reason').forEach((b) => b.addEventListener('click', async () => {
    await post('/api/decline', { order_id: declineOrder, reason: b.dataset.reason }).catch(() => {});
    $('decline-dialog').hidden = true;
  }));
  $('decline-cancel').addEventListener('click', () => { $('decline-dialog').hidden = true; });
  $('decline-send').addEventListener('click', async () => {
    const detail = $('decline-reason').value.trim();
    if (!detail) { notice(t('need_reason')); return; }
    await post('/api/decline', { order_id: declineOrder, reason: 'other', detail }).catch(() => {});
    $('decline-dialog').hidden = true;
  });
  document.querySelectorAll('button.status').forEach((b) => b.addEventListener('click', () => {
    const s = b.dataset.status;
    const order = activeOrder();
    const withOrder = order && s !== 'out_of_service' && s !== 'available';
    post('/api/status', { status: s, order_id: withOrder ? order.body.order_id : null }).catch(() => {});
  }));
  // The emergency control cannot be pressed by accident: it must be held for 2 s.
  let emergencyTimer = null;
  const stopHolding = () => {
    if (emergencyTimer) clearTimeout(emergencyTimer);
    emergencyTimer = null;
    $('emergency').classList.remove('holding');
  };
  $('emergency').addEventListener('pointerdown', (e) => {
    e.preventDefault();
    $('emergency').classList.add('holding');
    $('emergency-state').textContent = t('emergency_holding');
    emergencyTimer = setTimeout(async () => {
      stopHolding();
      await post('/api/emergency', {})
        .then(() => { $('emergency-state').textContent = t('emergency_sent'); })
        .catch(() => {});
    }, 2000);
  });
  ['pointerup', 'pointerleave', 'pointercancel'].forEach((type) => $('emergency').addEventListener(type, () => {
    if (emergencyTimer) $('emergency-state').textContent = '';
    stopHolding();
  }));
  $('text-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $('text-input').value.trim();
    if (!text) return;
    const order = activeOrder();
    await post('/api/text', { text, incident_id: order ? order.body.incident.id : null })
      .then(() => { $('text-input').value = ''; }).catch(() => {});
  });
  $('lang').addEventListener('click', () => {
    lang = lang === 'ko' ? 'en' : 'ko';
    localStorage.setItem('lang', lang);
    applyWords();
    render();
  });
  $('theme').addEventListener('click', () => {
    theme = theme === 'day' ? 'night' : 'day';
    localStorage.setItem('theme', theme);
    applyTheme();
  });
  // Browsers start audio only after a gesture; any touch unlocks it for later alerts.
  document.addEventListener('pointerdown', () => { if (audio && audio.state === 'suspended') audio.resume(); }, { passive: true });
}

applyTheme();
wire();
// The type names first (without them the codes show), then the state.
fetch('/kinds.json')
  .then((r) => (r.ok ? r.json() : {}))
  .catch(() => ({}))
  .then((names) => {
    kindNames = names;
    poll();
  });
setInterval(() => { if (state && !$('order-card').hidden) renderElapsed(); }, 1000);
