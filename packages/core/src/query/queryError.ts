import { TopGunError } from '../errors.js';

/**
 * Thrown for an invalid query: an unknown operator, a wrong operand type, a negative limit,
 * a field path into `__proto__`... `path` names the offending part, e.g. `where.age.gtt`.
 */
export class QueryError extends TopGunError {
  /** Where in the query the problem is. */
  readonly path: string;

  constructor(path: string, problem: string) {
    super('INVALID_QUERY', `${path}: ${problem}`);
    this.path = path;
  }
}
