//! Korean and English texts; the operator switches at any time and the choice is remembered.

export type Lang = 'ko' | 'en';

const en = {
  app_title: 'Dispatch console',
  login: 'Log in',
  logout: 'Log out',
  username: 'Username',
  password: 'Password',
  login_failed: 'Login failed',
  online: 'Live',
  offline: 'OFFLINE — reconnecting…',
  connecting: 'Connecting…',
  tab_console: 'Console',
  tab_units: 'Units',
  tab_broadcast: 'Broadcast',
  tab_supervisor: 'Supervisor',
  tab_admin: 'Admin',
  new_incident: 'New incident',
  address: 'Address',
  address_hint: 'Type an address, or click the map',
  kind: 'Type',
  priority: 'Priority',
  caller: 'Caller',
  notes: 'Notes',
  create: 'Create incident',
  location: 'Location',
  no_location: 'No location yet: pick an address or click the map',
  open_incidents: 'Open incidents',
  none: 'None',
  recommendations: 'Recommended units',
  eta: 'ETA',
  distance: 'Distance',
  dispatch_plan: 'Dispatch plan',
  dispatch_unit: 'Dispatch',
  orders: 'Orders',
  elapsed: 'Elapsed',
  cancel_order: 'Cancel',
  cancel_reason: 'Reason for cancelling',
  close_incident: 'Close incident',
  disposition: 'Disposition',
  timeline: 'Timeline',
  replay: 'Replay movements',
  units: 'Units',
  status: 'Status',
  call_sign: 'Call sign',
  capabilities: 'Capabilities',
  station: 'Station',
  last_fix: 'Last fix',
  message: 'Message',
  send: 'Send',
  messages: 'Messages',
  broadcast: 'Broadcast',
  target: 'Target',
  target_all: 'All units',
  target_station: 'Station',
  target_polygon: 'Area drawn on the map',
  draw_polygon: 'Draw area',
  finish_polygon: 'Finish area',
  clear_polygon: 'Clear',
  recipients: 'Recipients',
  headline: 'Headline',
  description: 'Description',
  instruction: 'Instruction',
  urgency: 'Urgency',
  severity: 'Severity',
  certainty: 'Certainty',
  sent_broadcasts: 'Sent broadcasts',
  delivered: 'Delivered',
  acknowledged: 'Acknowledged',
  escalation: 'ESCALATION',
  acknowledge: 'Acknowledge',
  incidents: 'Incidents',
  filter: 'Filter',
  all: 'All',
  response_times: 'Response times',
  call_to_dispatch: 'Call → dispatch',
  dispatch_to_ack: 'Dispatch → acknowledgement',
  ack_to_arrival: 'Acknowledgement → arrival',
  call_to_arrival: 'Call → arrival',
  export_json: 'Export JSON',
  export_csv: 'Export CSV',
  users: 'Users',
  devices: 'Devices',
  role: 'Role',
  add_user: 'Add user',
  add_unit: 'Add unit',
  enrolment_code: 'Enrolment code',
  issue_code: 'Issue code',
  revoke: 'Revoke',
  revoked: 'Revoked',
  enrolled: 'Enrolled',
  last_seen: 'Last seen',
  shortcuts: 'Alt+N new incident · Alt+D dispatch plan · Enter next field · Esc close',
  saved: 'Saved',
  error: 'Error',
  no_units: 'No unit can be recommended',
  since: 'Since',
  until: 'Until',
  refresh: 'Refresh',
  incident: 'Incident',
  who: 'Who',
  when: 'When',
  what: 'What',
  not_available: 'Not available on this server yet',
  count: 'Count',
  no_receipt: 'not received by the tablet',
  no_acknowledgement: 'not acknowledged by the officer',
  propose: 'propose',
  attention: 'ATTENTION',
  attention_order_unreplaced: 'no unit: order not taken',
  attention_dispatch_overdue: 'not dispatched',
  attention_welfare_check: 'welfare check: no word from the officer',
  attention_all_cleared: 'all units cleared: close or send another',
  attention_unread_text: 'unread message',
  dispatch_nearest: 'Dispatch nearest',
  mark_read: 'Mark read',
  officer_ok: 'Officer OK',
  needs_attention: 'need attention',
  notices: 'notices',
  tablet_offline: 'tablet offline',
  no_link: 'no tablet link',
  emergency: 'EMERGENCY',
  officer_emergency: 'officer in danger: emergency button',
  received: 'received',
  callback: 'Callback number',
  narrative: 'Narrative',
  add_narrative: 'Add to narrative',
  another_caller: 'another caller',
  edit_incident: 'Edit',
  save: 'Save',
  cancel: 'Cancel',
  choose_priority: 'P?',
  kind_required: 'Type is required',
  priority_required: 'Priority is required',
  possible_duplicates: 'Possible duplicates: the same call?',
  add_as_caller: 'Add as another caller to',
  create_anyway: 'Create anyway',
  same_address: 'same address',
  caller_added: 'added as another caller to',
} as const;

export type Key = keyof typeof en;

const ko: Record<Key, string> = {
  app_title: '112 지령 콘솔',
  login: '로그인',
  logout: '로그아웃',
  username: '아이디',
  password: '비밀번호',
  login_failed: '로그인 실패',
  online: '실시간',
  offline: '연결 끊김 — 재연결 중…',
  connecting: '연결 중…',
  tab_console: '접수·지령',
  tab_units: '출동대',
  tab_broadcast: '일제 전파',
  tab_supervisor: '감독',
  tab_admin: '관리',
  new_incident: '신규 사건',
  address: '주소',
  address_hint: '주소를 입력하거나 지도를 클릭하세요',
  kind: '유형',
  priority: '긴급도',
  caller: '신고자',
  notes: '메모',
  create: '사건 등록',
  location: '위치',
  no_location: '위치 없음: 주소를 고르거나 지도를 클릭하세요',
  open_incidents: '진행 중 사건',
  none: '없음',
  recommendations: '추천 출동대',
  eta: '도착 예상',
  distance: '거리',
  dispatch_plan: '출동 계획 지령',
  dispatch_unit: '지령',
  orders: '지령 현황',
  elapsed: '경과',
  cancel_order: '취소',
  cancel_reason: '취소 사유',
  close_incident: '사건 종결',
  disposition: '처리 결과',
  timeline: '타임라인',
  replay: '이동 경로 재생',
  units: '출동대',
  status: '상태',
  call_sign: '호출부호',
  capabilities: '능력',
  station: '소속',
  last_fix: '최근 위치',
  message: '메시지',
  send: '보내기',
  messages: '메시지',
  broadcast: '일제 전파',
  target: '대상',
  target_all: '전체',
  target_station: '소속',
  target_polygon: '지도에 그린 구역',
  draw_polygon: '구역 그리기',
  finish_polygon: '구역 완료',
  clear_polygon: '지우기',
  recipients: '수신 대상',
  headline: '제목',
  description: '내용',
  instruction: '지시',
  urgency: '긴급성',
  severity: '심각도',
  certainty: '확실성',
  sent_broadcasts: '보낸 전파',
  delivered: '전달됨',
  acknowledged: '확인됨',
  escalation: '경보',
  acknowledge: '확인',
  incidents: '사건',
  filter: '필터',
  all: '전체',
  response_times: '대응 시간',
  call_to_dispatch: '신고 → 지령',
  dispatch_to_ack: '지령 → 확인',
  ack_to_arrival: '확인 → 도착',
  call_to_arrival: '신고 → 도착',
  export_json: 'JSON 내보내기',
  export_csv: 'CSV 내보내기',
  users: '사용자',
  devices: '단말기',
  role: '역할',
  add_user: '사용자 추가',
  add_unit: '출동대 추가',
  enrolment_code: '등록 코드',
  issue_code: '코드 발급',
  revoke: '폐기',
  revoked: '폐기됨',
  enrolled: '등록',
  last_seen: '최근 접속',
  shortcuts: 'Alt+N 신규 사건 · Alt+D 출동 계획 지령 · Enter 다음 칸 · Esc 닫기',
  saved: '저장됨',
  error: '오류',
  no_units: '추천할 출동대가 없습니다',
  since: '부터',
  until: '까지',
  refresh: '새로고침',
  incident: '사건',
  who: '누가',
  when: '언제',
  what: '무엇',
  not_available: '이 서버에는 아직 없는 기능입니다',
  count: '건수',
  no_receipt: '단말기 수신 없음',
  no_acknowledgement: '경찰관 확인 없음',
  propose: '대체 추천',
  attention: '조치 필요',
  attention_order_unreplaced: '출동대 없음: 지령 미수행',
  attention_dispatch_overdue: '미지령',
  attention_welfare_check: '안전 확인: 경찰관 응답 없음',
  attention_all_cleared: '전 출동대 종료: 종결 또는 추가 지령',
  attention_unread_text: '읽지 않은 메시지',
  dispatch_nearest: '최근접 지령',
  mark_read: '읽음 처리',
  officer_ok: '이상 없음 확인',
  needs_attention: '조치 필요',
  notices: '알림',
  tablet_offline: '단말기 오프라인',
  no_link: '단말기 연결 없음',
  emergency: '긴급',
  officer_emergency: '경찰관 위험: 긴급 버튼',
  received: '수신',
  callback: '회신 번호',
  narrative: '경과 기록',
  add_narrative: '경과 추가',
  another_caller: '추가 신고자',
  edit_incident: '수정',
  save: '저장',
  cancel: '취소',
  choose_priority: '등급?',
  kind_required: '사건 유형을 입력하세요',
  priority_required: '긴급도를 선택하세요',
  possible_duplicates: '중복 신고 가능성: 같은 사건입니까?',
  add_as_caller: '추가 신고자로 등록:',
  create_anyway: '새 사건으로 접수',
  same_address: '같은 주소',
  caller_added: '추가 신고자로 등록됨:',
};

const dictionaries: Record<Lang, Record<Key, string>> = { en, ko };

/** Texts of order states, unit statuses and incident kinds, by language. */
const codes: Record<Lang, Record<string, string>> = {
  en: {
    queued: 'queued', delivered: 'delivered', displayed: 'displayed', acknowledged: 'acknowledged',
    accepted: 'accepted', declined: 'declined', completed: 'completed', cancelled: 'cancelled',
    expired: 'expired', available: 'available', assigned: 'assigned', en_route: 'en route',
    on_scene: 'on scene', out_of_service: 'out of service', open: 'open', dispatched: 'dispatched',
    closed: 'closed', pending: 'pending', cleared: 'cleared — awaiting disposition',
  },
  ko: {
    queued: '대기', delivered: '전달됨', displayed: '표시됨', acknowledged: '확인함',
    accepted: '수락', declined: '거절', completed: '완료', cancelled: '취소됨', expired: '만료',
    available: '가용', assigned: '지령받음', en_route: '출동 중', on_scene: '현장 도착',
    out_of_service: '운용 불가', open: '접수', dispatched: '지령됨', closed: '종결',
    pending: '미배정', cleared: '현장 종료 — 종결 대기',
  },
};

let current: Lang = readLang();
const listeners = new Set<() => void>();

function readLang(): Lang {
  try {
    const saved = globalThis.localStorage?.getItem('dispatch.lang');
    if (saved === 'en' || saved === 'ko') return saved;
  } catch {
    /* storage may be unavailable */
  }
  return 'ko';
}

export function lang(): Lang {
  return current;
}

/** Switches language, remembers it and re-renders whoever listens. */
export function setLang(l: Lang): void {
  current = l;
  try {
    globalThis.localStorage?.setItem('dispatch.lang', l);
  } catch {
    /* ignore */
  }
  document.documentElement.lang = l;
  [...listeners].forEach((f) => f());
}

export function onLangChange(f: () => void): void {
  listeners.add(f);
}

/** The text of `key` in the current language. */
export function t(key: Key): string {
  return dictionaries[current][key];
}

/** The text of a state or status code; the code itself when unknown. */
export function code(c: string): string {
  return codes[current][c] ?? c.replace(/_/g, ' ');
}

/** Every key has a text in every language (used by tests). */
export function missingTexts(): string[] {
  const missing: string[] = [];
  for (const l of Object.keys(dictionaries) as Lang[]) {
    for (const k of Object.keys(en) as Key[]) {
      if (!dictionaries[l][k]) missing.push(`${l}.${k}`);
    }
  }
  return missing;
}
