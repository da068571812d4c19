/**
 * JSON with object fields in sorted order (by UTF-16 code units, like `compareValues`): two
 * values equal under `compareValues` give the same text, whatever the order their fields
 * were written in. Used as a key for sets of values (`in` lists, equal queries).
 */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.keys(value)
      .sort()
      .map(
        (key) =>
          `${JSON.stringify(key)}:${stableStringify((value as Record<string, unknown>)[key])}`,
      )
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}
