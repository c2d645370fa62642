import { resolve } from 'node:path';
import { MeasureCatalogue } from './catalogue';
import { gapKinds, measuresInForce, validUntil } from './care-gaps';

const SHIPPED = resolve(__dirname, '../../../fhir-profiles/measures');
const YEAR = { start: '2025-01-01', end: '2025-12-31' };

describe('care gaps: evidence windows and measures in force', () => {
  it('a fact counts until its date plus the window less a day; a period fact for this period; ever: no limit', () => {
    expect(validUntil({ years: 2 }, '2024-06-01T10:00:00.000Z', YEAR)).toBe('2026-05-31');
    expect(validUntil({ months: 6 }, '2025-03-01T00:00:00.000Z', YEAR)).toBe('2025-08-31');
    expect(validUntil('period', '2025-10-15T00:00:00.000Z', YEAR)).toBe('2025-12-31');
    expect(validUntil('ever', '2001-01-01T00:00:00.000Z', YEAR)).toBeUndefined();
    expect(validUntil({ years: 2 }, null, YEAR)).toBeUndefined();
    // A fact relative to an event (followedBy) has no window of its own.
    expect(validUntil(undefined, '2025-01-01T00:00:00.000Z', YEAR)).toBeUndefined();
  });

  it('the numerator kinds keep their windows, not those under "not"', () => {
    const c = MeasureCatalogue.fromDirectory(SHIPPED);
    expect(gapKinds(c.get('rosp-depistage-colorectal')!.numerator)).toEqual([
      expect.objectContaining({ resource: 'Observation', window: { years: 2 } }),
    ]);
    expect(gapKinds(c.get('cpts-sans-medecin-traitant')!.numerator)).toEqual([]);
  });

  it('keeps the measures whose effectivePeriod holds the day (none: always in force)', () => {
    const c0 = MeasureCatalogue.fromDirectory(SHIPPED);
    const [a, b, c] = [...c0.measures.values()];
    const old = { ...a!, resource: { ...a!.resource, effectivePeriod: { start: '2016-01-01', end: '2025-12-31' } } };
    const next = { ...b!, resource: { ...b!.resource, effectivePeriod: { start: '2026-01-01' } } };
    const always = { ...c!, resource: { ...c!.resource, effectivePeriod: undefined } };
    const all = [old, next, always];
    expect(measuresInForce(all, '2025-12-31').map((m) => m.id)).toEqual([old.id, always.id]);
    expect(measuresInForce(all, '2026-12-31').map((m) => m.id)).toEqual([next.id, always.id]);
  });
});
