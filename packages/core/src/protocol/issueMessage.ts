import type { core } from 'zod/mini';
import { describeValue } from '../describeValue.js';

/**
 * The message of a schema issue in a malformed protocol message, for the error the sender is
 * told: zod's lightweight build carries no English messages of its own, and a client or a
 * server developer needs more than "Invalid input". Messages the schemas set themselves (map
 * names, keys, node ids, queries) are kept as they are.
 */
export function issueMessage(issue: core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined
        ? `required (${issue.expected})`
        : `expected ${issue.expected}, got ${describeValue(issue.input)}`;
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((key) => JSON.stringify(key)).join(', ')}`;
    case 'too_small':
      return issue.origin === 'array'
        ? `expected at least ${String(issue.minimum)} item${issue.minimum === 1 ? '' : 's'}`
        : `expected at least ${String(issue.minimum)}`;
    case 'too_big':
      return issue.origin === 'string'
        ? `expected at most ${String(issue.maximum)} characters`
        : issue.origin === 'array'
          ? `expected at most ${String(issue.maximum)} items`
          : `expected at most ${String(issue.maximum)}`;
    case 'invalid_value':
      return `expected ${issue.values.map((value) => JSON.stringify(value)).join(' or ')}`;
    case 'invalid_union':
      return 'matches none of the shapes allowed here';
    default:
      return undefined;
  }
}
