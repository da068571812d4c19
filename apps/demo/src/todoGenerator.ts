import type { ClientMap } from '@topgun/client';
import { useSyncExternalStore } from 'react';
import { demoTodo } from './demoTodo.js';
import type { Todo } from './model.js';

/** How far a generation got. */
export interface Generation {
  /** Todos written so far. */
  readonly written: number;
  /** Todos asked for. */
  readonly total: number;
  readonly state: 'idle' | 'running' | 'stopped' | 'done' | 'failed';
  /** Why it failed. */
  readonly error: string | null;
}

/**
 * Time a slice of writes may take before the page gets the main thread back (to render the
 * figures that moved, and to answer input): well under a frame.
 */
const SLICE_MS = 12;
/** Writes between two looks at the clock (a write takes about 0.1 ms). */
const WRITES_PER_CHECK = 20;

let current: Generation = { written: 0, total: 0, state: 'idle', error: null };
const listeners = new Set<() => void>();
let stopRequested = false;

function publish(next: Generation): void {
  current = next;
  for (const listener of listeners) listener();
}

/**
 * A task boundary without the 4 ms clamp nested `setTimeout`s get: the browser renders and
 * handles input in between when a frame is due.
 */
function nextTask(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/**
 * Writes `total` generated todos into `todos` through the client, a slice of about
 * {@link SLICE_MS} per task, so the page stays responsive and live results keep up. One
 * generation at a time: a call while one runs does nothing.
 */
export async function generateTodos(todos: ClientMap<Todo>, total: number): Promise<void> {
  if (current.state === 'running') return;
  stopRequested = false;
  // Keys of one run share a prefix and count up: unique, and new todos never replace old ones.
  const run = `todo-gen-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  let written = 0;
  publish({ written, total, state: 'running', error: null });
  try {
    while (written < total) {
      if (stopRequested) {
        publish({ written, total, state: 'stopped', error: null });
        return;
      }
      const sliceEnd = performance.now() + SLICE_MS;
      const now = Date.now();
      do {
        todos.set(`${run}-${written.toString(36)}`, demoTodo(now));
        written++;
      } while (
        written < total &&
        (written % WRITES_PER_CHECK !== 0 || performance.now() < sliceEnd)
      );
      publish({ written, total, state: written < total ? 'running' : 'done', error: null });
      await nextTask();
    }
  } catch (error) {
    publish({ written, total, state: 'failed', error: (error as Error).message });
  }
}

/** Asks the running generation to stop after its current slice. */
export function stopGenerating(): void {
  stopRequested = true;
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The current generation's progress; survives leaving the view that started it. */
export function useGeneration(): Generation {
  return useSyncExternalStore(subscribe, () => current);
}
