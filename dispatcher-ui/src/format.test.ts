import { describe, expect, it } from 'vitest';

import { awaitingAcknowledgement, dateTime, distance, duration, elapsed, eta, finished, priorityColour } from './format';
import { browserLang, code, lang, missingTexts, setLang, t } from './i18n';

describe('supervisor figures', () => {
  it('reads response times as minutes and seconds, and dates in full', () => {
    expect(duration(217.6)).toBe('3:38');
    expect(duration(59.4)).toBe('0:59');
    expect(duration(3725)).toBe('1:02:05');
    expect(duration(null)).toBe('—');
    expect(dateTime(new Date(2026, 11, 5, 1, 2, 3).getTime())).toBe('2026-12-05 01:02:03');
  });
});

describe('format', () => {
  it('formats elapsed times', () => {
    expect(elapsed(0)).toBe('0:00');
    expect(elapsed(65_000)).toBe('1:05');
    expect(elapsed(3_725_000)).toBe('1:02:05');
    expect(elapsed(-5000)).toBe('0:00');
    expect(eta(89.6)).toBe('1:30');
  });

  it('formats distances', () => {
    expect(distance(150.4)).toBe('150 m');
    expect(distance(1549)).toBe('1.5 km');
  });

  it('classifies order states', () => {
    expect(awaitingAcknowledgement('displayed')).toBe(true);
    expect(awaitingAcknowledgement('acknowledged')).toBe(false);
    expect(finished('expired')).toBe(true);
    expect(finished('accepted')).toBe(false);
    expect(priorityColour(0)).not.toBe(priorityColour(3));
  });
});

describe('i18n', () => {
  it('has every text in Korean and English', () => {
    expect(missingTexts()).toEqual([]);
  });

  it('follows the browser until the user chooses', () => {
    expect(browserLang(['en-GB', 'ko-KR'])).toBe('en');
    expect(browserLang(['fi-FI', 'ko'])).toBe('ko');
    expect(browserLang(['KO-kr'])).toBe('ko');
    expect(browserLang(['fi', 'sv'])).toBeUndefined();
    expect(browserLang([])).toBeUndefined();
  });

  it('switches language and remembers it', () => {
    setLang('en');
    expect(t('login')).toBe('Log in');
    expect(code('en_route')).toBe('en route');
    setLang('ko');
    expect(lang()).toBe('ko');
    expect(t('login')).toBe('로그인');
    expect(code('acknowledged')).toBe('확인함');
    expect(localStorage.getItem('dispatch.lang')).toBe('ko');
    expect(code('some_new_state')).toBe('some new state');
  });
});
