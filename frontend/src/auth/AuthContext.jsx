import { createContext, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import { clearMediaCookie, createApi } from '../api/client.js';
import { SESSION_EXPIRED_MESSAGE } from '../api/errors.js';
import { decodeClaims, loadToken, msUntilExpiry, saveCurrentJob, saveToken } from './token.js';

const AuthContext = createContext(null);

function initialToken() {
  const token = loadToken();
  const left = msUntilExpiry(token);
  if (token && left !== null && left <= 0) {
    saveToken(null);
    return { token: null, notice: SESSION_EXPIRED_MESSAGE };
  }
  return { token, notice: null };
}

/** Holds the session: the JWT, the signed-in email, and a notice for the login page. */
export function AuthProvider({ children }) {
  const [state, setState] = useState(initialToken);
  const { token, notice } = state;

  const signIn = useCallback((newToken) => {
    saveToken(newToken);
    setState({ token: newToken, notice: null });
  }, []);

  /** Ends the session; `message` is shown on the login page (e.g. why the user was signed out). */
  const signOut = useCallback((message = null) => {
    // The audio players' cookie holds the token: it goes with the session.
    clearMediaCookie();
    saveToken(null);
    saveCurrentJob(null);
    setState({ token: null, notice: message });
  }, []);

  const setNotice = useCallback((message) => setState((current) => ({ ...current, notice: message })), []);

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

  const value = useMemo(
    () => ({
      token,
      email: decodeClaims(token)?.username ?? null,
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
export function useAuth() {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth outside AuthProvider');
  return value;
}
