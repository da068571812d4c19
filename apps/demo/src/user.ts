import { useSyncExternalStore } from 'react';

const STORAGE_KEY = 'topgun-demo:user';
const listeners = new Set<() => void>();

const ANIMALS = ['Otter', 'Falcon', 'Lynx', 'Heron', 'Panda', 'Koala', 'Ibex', 'Orca'];

function initialName(): string {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored) return stored;
  const name = `${ANIMALS[Math.floor(Math.random() * ANIMALS.length)]} ${Math.floor(Math.random() * 90 + 10)}`;
  localStorage.setItem(STORAGE_KEY, name);
  return name;
}

let current = initialName();

/** The name shown as "changed by" on this browser's edits. */
export function useUserName(): [string, (name: string) => void] {
  const name = useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => current,
  );
  return [
    name,
    (next: string) => {
      current = next.trim() || current;
      localStorage.setItem(STORAGE_KEY, current);
      for (const listener of listeners) listener();
    },
  ];
}

/** The current name, outside React. */
export function userName(): string {
  return current;
}
