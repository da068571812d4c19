/**
 * The total order TopGun uses wherever values must be ordered identically on every replica
 * (query sorting, LWW tie-breaks): by type first, `undefined` (a missing field) < `null` <
 * booleans < numbers < strings < arrays < objects; then within a type: `false < true`,
 * numeric order, UTF-16 code unit order for strings, element-wise for arrays (a prefix
 * first), and for objects their sorted field names element-wise, then field values in that
 * order.
 */
export function compareValues(a: unknown, b: unknown): number {
  if (a === b) return 0;
  // Fast paths for the common cases: two numbers or two strings.
  const typeA = typeof a;
  if (typeA === typeof b) {
    if (typeA === 'number')
      return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
    if (typeA === 'string') return (a as string) < (b as string) ? -1 : 1;
  }
  const rankA = typeRank(a);
  const rankB = typeRank(b);
  if (rankA !== rankB) return rankA - rankB;
  switch (rankA) {
    case 2:
      return a ? 1 : -1; // a !== b, so exactly one is true
    case 3:
      return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
    case 4:
      return (a as string) < (b as string) ? -1 : 1;
    case 5:
      return compareArrays(a as readonly unknown[], b as readonly unknown[]);
    case 6:
      return compareObjects(a as Record<string, unknown>, b as Record<string, unknown>);
    default:
      return 0;
  }
}

function typeRank(value: unknown): number {
  if (value === undefined) return 0;
  if (value === null) return 1;
  switch (typeof value) {
    case 'boolean':
      return 2;
    case 'number':
      return 3;
    case 'string':
      return 4;
    default:
      return Array.isArray(value) ? 5 : 6;
  }
}

function compareArrays(a: readonly unknown[], b: readonly unknown[]): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const order = compareValues(a[i], b[i]);
    if (order !== 0) return order;
  }
  return a.length - b.length;
}

function compareObjects(a: Record<string, unknown>, b: Record<string, unknown>): number {
  const fieldsA = Object.keys(a).sort();
  const fieldsB = Object.keys(b).sort();
  const byFields = compareArrays(fieldsA, fieldsB);
  if (byFields !== 0) return byFields;
  for (const field of fieldsA) {
    const order = compareValues(a[field], b[field]);
    if (order !== 0) return order;
  }
  return 0;
}
