// What the dashboard's patient lists (the recall list, the care-gaps worklist) share: text
// matching without accents, cell ordering, the CSV French Excel opens as is, a labelled control.

/**
 * Lower case, accents and surrounding blanks removed: "Éléonore " matches "eleonore".
 * @param {string} s
 */
export function normalise(s) {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .trim();
}

/**
 * Empty values sort lowest (first ascending): "never done" comes first when sorting by date.
 * Numbers compare as numbers, text in French order with numbers inside it in numeric order.
 * @param {string | number | null | undefined} a
 * @param {string | number | null | undefined} b
 * @param {boolean} [numeric] compare as numbers even when the values are text
 */
export function compareCells(a, b, numeric) {
  if (numeric || typeof a === 'number' || typeof b === 'number' || a === null || b === null) {
    return (
      (a === null || a === undefined || a === '' ? -Infinity : Number(a)) -
      (b === null || b === undefined || b === '' ? -Infinity : Number(b))
    );
  }
  return String(a ?? '').localeCompare(String(b ?? ''), 'fr', { numeric: true, sensitivity: 'base' });
}

/**
 * UTF-8 with a BOM, ';' between fields, CRLF, the columns' labels as header.
 * @template {object} R
 * @param {{ key: keyof R; label: string }[]} columns
 * @param {R[]} rows
 */
export function csvOf(columns, rows) {
  /** @param {unknown} v */
  const field = (v) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[;"\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [columns.map((c) => field(c.label)), ...rows.map((r) => columns.map((c) => field(r[c.key])))];
  return `\uFEFF${lines.map((l) => l.join(';')).join('\r\n')}\r\n`;
}

/**
 * A control with its label, in a div.
 * @param {string} id
 * @param {string} text
 * @param {HTMLElement} control
 */
export function labelled(id, text, control) {
  const div = document.createElement('div');
  const label = document.createElement('label');
  label.htmlFor = id;
  label.textContent = text;
  div.append(label, control);
  return div;
}
