import { useState } from 'react';
import { ActivityView } from './ActivityView.js';
import { Dashboard } from './Dashboard.js';
import { StatusBar } from './StatusBar.js';
import { TodoView } from './TodoView.js';
import { useUserName } from './user.js';

const VIEWS = [
  { view: 'todos', label: 'Todos', hash: '#' },
  { view: 'dashboard', label: 'Dashboard', hash: '#dashboard' },
  { view: 'activity', label: 'Activity', hash: '#activity' },
] as const;

type View = (typeof VIEWS)[number]['view'];

export function App() {
  const [view, setView] = useState<View>(
    VIEWS.find(({ hash }) => hash === location.hash)?.view ?? 'todos',
  );
  const [name, setName] = useUserName();
  const show = (next: (typeof VIEWS)[number]) => {
    setView(next.view);
    history.replaceState(null, '', next.hash);
  };
  return (
    <div className="app">
      <header className="header">
        <div className="brand">
          <img src="/favicon.svg" alt="" width={28} height={28} />
          <h1>TopGun</h1>
        </div>
        <nav className="tabs" aria-label="Views">
          {VIEWS.map((option) => (
            <button
              key={option.view}
              type="button"
              aria-pressed={view === option.view}
              onClick={() => show(option)}
            >
              {option.label}
            </button>
          ))}
        </nav>
        <label className="user">
          <span>You are</span>
          <input
            aria-label="Your name"
            data-testid="user-name"
            defaultValue={name}
            onBlur={(event) => setName(event.target.value)}
            onKeyDown={(event) => {
              if (event.key === 'Enter') event.currentTarget.blur();
            }}
          />
        </label>
      </header>
      <StatusBar />
      <main>
        {view === 'todos' ? <TodoView /> : view === 'dashboard' ? <Dashboard /> : <ActivityView />}
      </main>
    </div>
  );
}
