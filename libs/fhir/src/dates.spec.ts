import { dateRange, MAX_DATE } from './dates';

describe('dateRange', () => {
  it('a year covers the whole year', () => {
    expect(dateRange('1980')).toEqual({ low: '1980-01-01T00:00:00.000Z', high: '1981-01-01T00:00:00.000Z' });
  });

  it('a month covers the whole month, December rolling into the next year', () => {
    expect(dateRange('1980-02')).toEqual({ low: '1980-02-01T00:00:00.000Z', high: '1980-03-01T00:00:00.000Z' });
    expect(dateRange('1980-12')).toEqual({ low: '1980-12-01T00:00:00.000Z', high: '1981-01-01T00:00:00.000Z' });
  });

  it('a day covers the whole UTC day', () => {
    expect(dateRange('1980-02-27')).toEqual({ low: '1980-02-27T00:00:00.000Z', high: '1980-02-28T00:00:00.000Z' });
    expect(dateRange('1999-12-31')).toEqual({ low: '1999-12-31T00:00:00.000Z', high: '2000-01-01T00:00:00.000Z' });
  });

  it('accepts 29 February in leap years only', () => {
    expect(dateRange('2024-02-29')?.high).toBe('2024-03-01T00:00:00.000Z');
    expect(dateRange('2000-02-29')).toBeDefined();
    expect(dateRange('2023-02-29')).toBeUndefined();
    expect(dateRange('1900-02-29')).toBeUndefined();
  });

  it('rejects days the month does not have instead of rolling them over', () => {
    expect(dateRange('1980-02-30')).toBeUndefined();
    expect(dateRange('1980-04-31')).toBeUndefined();
    expect(dateRange('1980-02-00')).toBeUndefined();
  });

  it('a dateTime with an offset is converted to UTC, one second wide', () => {
    expect(dateRange('2024-03-05T09:00:00+01:00')).toEqual({
      low: '2024-03-05T08:00:00.000Z',
      high: '2024-03-05T08:00:01.000Z',
    });
  });

  it('the width of a dateTime follows its precision: minute, second, millisecond', () => {
    expect(dateRange('2024-03-05T09:30Z')).toEqual({
      low: '2024-03-05T09:30:00.000Z',
      high: '2024-03-05T09:31:00.000Z',
    });
    expect(dateRange('2024-03-05T09:30:00.123Z')).toEqual({
      low: '2024-03-05T09:30:00.123Z',
      high: '2024-03-05T09:30:00.124Z',
    });
  });

  it('a dateTime without a zone is read as UTC', () => {
    expect(dateRange('2024-03-05T09:30:00')?.low).toBe('2024-03-05T09:30:00.000Z');
  });

  it('years below 100 stay in the first century (Date.UTC would move them to the 1900s)', () => {
    expect(dateRange('0050')?.low).toBe('0050-01-01T00:00:00.000Z');
    expect(dateRange('0099-12-31')?.high).toBe('0100-01-01T00:00:00.000Z');
  });

  it('the end of year 9999 is infinity, which PostgreSQL can read', () => {
    expect(dateRange('9999')).toEqual({ low: '9999-01-01T00:00:00.000Z', high: MAX_DATE });
  });

  it('ignores surrounding whitespace', () => {
    expect(dateRange(' 1980-02-27 ')?.low).toBe('1980-02-27T00:00:00.000Z');
  });

  it.each([
    '',
    'hier',
    '27/02/1980',
    '1980-2-27',
    '80-02-27',
    '1980-13',
    '1980-00',
    '0000',
    '2024-03-05T24:00:00Z',
    '2024-03-05T10:60:00Z',
    '2024-03-05T10:00:00+0100',
  ])('rejects %j', (text) => {
    expect(dateRange(text)).toBeUndefined();
  });
});
