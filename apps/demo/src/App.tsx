import { useState } from 'react';
import { Dashboard } from './Dashboard.js';
import { StatusBar } from './StatusBar.js';
import { TodoView } from './TodoView.js';
import { useUserName } from './user.js';

type View = 'todos' | 'dashboard';

export function App() {
  const [view, setView] = useState<View>(location.hash === '#dashboard' ? 'dashboard' : 'todos');
  const [name, setName] = useUserName();
  const show = (next: View) => {
    setView(next);
    history.replaceState(null, '', next === 'dashboard' ? '#dashboard' : '#');
  };
  return (
    <div className="app">
      <header className="header">
        <div className="brand">
          <img src="/favicon.svg" alt="" width={28} height={28} />
          <h1>TopGun</h1>
        </div>
        <nav className="tabs" aria-label="Views">
          <button type="button" aria-pressed={view === 'todos'} onClick={() => show('todos')}>
            Todos
          </button>
          <button
            type="button"
            aria-pressed={view === 'dashboard'}
            onClick={() => show('dashboard')}
          >
            Dashboard
          </button>
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
      <main>{view === 'todos' ? <TodoView /> : <Dashboard />}</main>
    </div>
  );
}
