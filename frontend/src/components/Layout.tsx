import { NavLink, Outlet, useNavigate } from 'react-router-dom';
import { useAuth } from '../auth/AuthContext';

const linkClass = ({ isActive }: { isActive: boolean }) =>
  `rounded-md px-3 py-2 text-sm font-medium ${isActive ? 'bg-indigo-700 text-white' : 'text-indigo-100 hover:bg-indigo-600 hover:text-white'}`;

/** The frame of the signed-in pages: header with navigation, the signed-in email and logout. */
export default function Layout() {
  const { email, signOut } = useAuth();
  const navigate = useNavigate();

  const logout = () => {
    signOut('You have been logged out.');
    navigate('/login', { replace: true });
  };

  return (
    <div className="flex min-h-screen flex-col">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-10 focus:rounded focus:bg-white focus:px-3 focus:py-2">
        Skip to content
      </a>
      <header className="bg-indigo-800 text-white shadow">
        <div className="mx-auto flex max-w-4xl flex-wrap items-center justify-between gap-x-4 gap-y-2 px-4 py-3">
          <span className="text-lg font-bold tracking-tight">Video → MP3</span>
          <nav aria-label="Main" className="flex items-center gap-1">
            <NavLink to="/convert" className={linkClass}>
              Convert
            </NavLink>
            <NavLink to="/history" className={linkClass}>
              History
            </NavLink>
          </nav>
          <div className="flex items-center gap-3">
            {email && (
              <span className="hidden max-w-48 truncate text-sm text-indigo-100 sm:inline" title={email}>
                {email}
              </span>
            )}
            <button
              type="button"
              onClick={logout}
              className="rounded-md px-3 py-2 text-sm font-medium text-indigo-100 ring-1 ring-inset ring-indigo-400 hover:bg-indigo-600 hover:text-white"
            >
              Log out
            </button>
          </div>
        </div>
      </header>
      <main id="main" className="mx-auto w-full max-w-4xl flex-1 px-4 py-6 sm:py-10">
        <Outlet />
      </main>
    </div>
  );
}
