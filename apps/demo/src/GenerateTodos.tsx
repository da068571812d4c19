import { useClient } from '@topgun/react';
import { TODOS, type Todo } from './model.js';
import { generateTodos, stopGenerating, useGeneration } from './todoGenerator.js';

const DEFAULT_COUNT = 100_000;
const MAX_COUNT = 1_000_000;

/** Todos one press writes: 100,000, or `?generate=N` in the page's address (tests ask for fewer). */
function countToGenerate(): number {
  const asked = Number(new URLSearchParams(location.search).get('generate') ?? Number.NaN);
  return Number.isSafeInteger(asked) && asked > 0 ? Math.min(asked, MAX_COUNT) : DEFAULT_COUNT;
}

const COUNT = countToGenerate();

/** A button that fills the todos map with generated todos, and how far it got. */
export function GenerateTodos() {
  const client = useClient();
  const { written, total, state, error } = useGeneration();
  const running = state === 'running';
  return (
    <section className="card generator" aria-labelledby="generate-heading">
      <h2 id="generate-heading">Load test</h2>
      <p className="note">
        Writes {COUNT.toLocaleString()} todos by a team of eight through the client, a slice at a
        time: the figures keep up as they land, and the status bar shows them syncing.
      </p>
      <div className="generate">
        {running ? (
          <button
            type="button"
            className="secondary"
            data-testid="generate-stop"
            onClick={stopGenerating}
          >
            Stop
          </button>
        ) : (
          <button
            type="button"
            className="primary"
            data-testid="generate"
            onClick={() => void generateTodos(client.getMap<Todo>(TODOS), COUNT)}
          >
            Generate {COUNT.toLocaleString()} todos
          </button>
        )}
        {state !== 'idle' ? (
          <span
            className="generate-progress"
            data-testid="generate-progress"
            data-state={state}
            data-written={written}
          >
            <progress max={total} value={written} aria-label="Todos written" />
            {state === 'stopped'
              ? `Stopped at ${written.toLocaleString()} of ${total.toLocaleString()}`
              : `${written.toLocaleString()} / ${total.toLocaleString()} written`}
          </span>
        ) : null}
      </div>
      {error !== null ? (
        <p className="error" role="alert">
          {error}
        </p>
      ) : null}
    </section>
  );
}
