/** SMART v2 interactions: create, read, update, delete, search. */
export type ScopeAction = 'c' | 'r' | 'u' | 'd' | 's';

interface ParsedScope {
  type: string;
  actions: Set<ScopeAction>;
}

const V1_ACTIONS: Record<string, ScopeAction[]> = {
  read: ['r', 's'],
  write: ['c', 'u', 'd'],
  '*': ['c', 'r', 'u', 'd', 's'],
};

/**
 * Parses `system/Patient.rs`, `system/*.cruds` (SMART v2) and the v1 forms `system/*.read`,
 * `system/Patient.write`. Non-system scopes (patient/, user/) are ignored by a backend service.
 * Granular scopes (`system/Observation.rs?category=…`) are refused: the store cannot enforce the
 * query part, and dropping it would grant the whole type.
 */
export function parseScope(scope: string): ParsedScope | undefined {
  const m = /^system\/([A-Z][A-Za-z]*|\*)\.([a-z*]+)$/.exec(scope);
  if (!m) {
    return undefined;
  }
  const [, type, act] = m;
  // hasOwn: `act` is caller input, and "constructor" would otherwise be found on the prototype.
  if (Object.hasOwn(V1_ACTIONS, act)) {
    return { type, actions: new Set(V1_ACTIONS[act]) };
  }
  if (!/^c?r?u?d?s?$/.test(act) || act.length === 0) {
    return undefined;
  }
  return { type, actions: new Set(act.split('') as ScopeAction[]) };
}

export function isValidScope(scope: string): boolean {
  return parseScope(scope) !== undefined;
}

/** True when the granted scopes allow `action` on `resourceType`. */
export function scopeAllows(granted: string[], resourceType: string, action: ScopeAction): boolean {
  return granted.some((s) => {
    const p = parseScope(s);
    return !!p && (p.type === '*' || p.type === resourceType) && p.actions.has(action);
  });
}

/**
 * True when `requested` grants nothing beyond `allowed` (each of its actions is allowed). A
 * wildcard request only fits under a wildcard grant, as scopeAllows(…, '*', …) matches only '*'.
 */
export function scopeWithin(requested: string, allowed: string[]): boolean {
  const r = parseScope(requested);
  return !!r && [...r.actions].every((a) => scopeAllows(allowed, r.type, a));
}

/** A space-separated scope string (OAuth2 `scope`, CLI `--scopes`) as a list, empty items dropped. */
export function splitScopes(text: string): string[] {
  return text.split(/\s+/).filter(Boolean);
}
