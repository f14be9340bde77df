import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { clearMediaCookie, createApi, type Api } from '../api/client';
import { SESSION_EXPIRED_MESSAGE } from '../api/errors';
import { decodeClaims, loadToken, msUntilExpiry, saveCurrentJob, saveToken } from './token';

/** What `useAuth` gives the pages. */
export interface Session {
  token: string | null;
  email: string | null;
  notice: string | null;
  setNotice: (message: string | null) => void;
  signIn: (token: string) => void;
  signOut: (message?: string | null) => void;
  api: Api | null;
}

const AuthContext = createContext<Session | null>(null);

function initialToken(): { token: string | null; notice: string | null } {
  const token = loadToken();
  const left = msUntilExpiry(token);
  if (token && left !== null && left <= 0) {
    saveToken(null);
    return { token: null, notice: SESSION_EXPIRED_MESSAGE };
  }
  return { token, notice: null };
}

/** The signed-in email: the token's `username` claim. */
function emailOf(token: string | null): string | null {
  const username = decodeClaims(token)?.username;
  return typeof username === 'string' ? username : null;
}

/** Holds the session: the JWT, the signed-in email, and a notice for the login page. */
export function AuthProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState(initialToken);
  const { token, notice } = state;

  const signIn = useCallback((newToken: string) => {
    saveToken(newToken);
    setState({ token: newToken, notice: null });
  }, []);

  /** Ends the session; `message` is shown on the login page (e.g. why the user was signed out). */
  const signOut = useCallback((message: string | null = null) => {
    // The audio players' cookie holds the token: it goes with the session.
    clearMediaCookie();
    saveToken(null);
    saveCurrentJob(null);
    setState({ token: null, notice: message });
  }, []);

  const setNotice = useCallback((message: string | null) => setState((current) => ({ ...current, notice: message })), []);

  const expire = useCallback(() => signOut(SESSION_EXPIRED_MESSAGE), [signOut]);

  // Sign out when the token's own expiry passes, not only on the next 401.
  useEffect(() => {
    if (!token) return undefined;
    const left = msUntilExpiry(token);
    if (left === null) return undefined;
    // setTimeout's limit is ~24.8 days; a longer wait is clamped and the 401 path covers the rest.
    const timer = setTimeout(expire, Math.min(Math.max(left, 0), 2_147_000_000));
    return () => clearTimeout(timer);
  }, [token, expire]);

  // Its own memo: a new notice must not make a new client (pages watching a job would restart).
  const api = useMemo(() => (token ? createApi(token, expire) : null), [token, expire]);

  const value = useMemo<Session>(
    () => ({
      token,
      email: emailOf(token),
      notice,
      setNotice,
      signIn,
      signOut,
      api,
    }),
    [token, notice, setNotice, signIn, signOut, api],
  );

  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

/** The session of the AuthProvider above. */
// eslint-disable-next-line react-refresh/only-export-components
export function useAuth(): Session {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth outside AuthProvider');
  return value;
}
