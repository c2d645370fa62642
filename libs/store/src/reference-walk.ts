/**
 * Calls `visit` for every `reference` string of a resource (contained resources included), with
 * the Reference element holding it and its FHIRPath-like expression (`Observation.subject`,
 * `Group.member[0].entity`).
 */
export function forEachReference(
  resource: object,
  visit: (reference: string, holder: Record<string, unknown>, expression: string) => void,
): void {
  const walk = (node: unknown, path: string): void => {
    if (Array.isArray(node)) {
      node.forEach((n, i) => walk(n, `${path}[${i}]`));
      return;
    }
    if (!node || typeof node !== 'object') {
      return;
    }
    const o = node as Record<string, unknown>;
    for (const [k, v] of Object.entries(o)) {
      if (k === 'reference' && typeof v === 'string') {
        visit(v, o, path);
      } else if (v && typeof v === 'object') {
        walk(v, `${path}.${k}`);
      }
    }
  };
  walk(resource, String((resource as { resourceType?: unknown }).resourceType ?? 'Resource'));
}
