import { useEffect, useId, useRef, useState, type FormEvent } from 'react';
import { Link, Navigate, useLocation, useNavigate } from 'react-router-dom';
import { login, register } from '../api/client';
import { useAuth } from '../auth/AuthContext';
import Alert from '../components/Alert';
import Button from '../components/Button';
import { messageOf } from '../api/errors';
import { MIN_PASSWORD_LENGTH } from '../api/limits';

/** The services' own rules (api/limits), checked here first so the user hears about them without a round trip. */
const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

type Mode = 'login' | 'register';

/** A problem with what was entered, and the field to fix (null: none in particular). */
interface Problem {
  field: 'email' | 'password' | null;
  message: string;
}

function validate(mode: Mode, email: string, password: string): Problem | null {
  if (!EMAIL_SHAPE.test(email)) return { field: 'email', message: 'Enter an email address like name@example.com.' };
  if (mode === 'register' && password.length < MIN_PASSWORD_LENGTH) {
    return { field: 'password', message: `The password must be at least ${MIN_PASSWORD_LENGTH} characters long.` };
  }
  if (password.length === 0) return { field: 'password', message: 'Enter your password.' };
  return null;
}

/** Where to go after signing in: where the user was sent away from (RequireAuth), or /convert. */
function fromOf(state: unknown): string {
  if (state && typeof state === 'object' && 'from' in state && typeof state.from === 'string' && state.from) return state.from;
  return '/convert';
}

const inputClass =
  'block w-full rounded-lg border-0 px-3 py-2.5 text-slate-900 shadow-sm ring-1 ring-inset ring-slate-300 placeholder:text-slate-400 focus:ring-2 focus:ring-inset focus:ring-indigo-600 aria-[invalid=true]:ring-red-500';

/** Login (`mode="login"`) and registration (`mode="register"`) with errors shown in words. */
export default function AuthPage({ mode }: { mode: Mode }) {
  const isLogin = mode === 'login';
  const { token, notice, setNotice, signIn } = useAuth();
  const navigate = useNavigate();
  const location = useLocation();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);
  const emailRef = useRef<HTMLInputElement>(null);
  const passwordRef = useRef<HTMLInputElement>(null);
  const id = useId();

  useEffect(() => {
    document.title = `${isLogin ? 'Log in' : 'Create account'} · Video to MP3`;
  }, [isLogin]);

  const from = fromOf(location.state);
  if (token) return <Navigate to={from} replace />;

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const problem = validate(mode, email.trim(), password);
    if (problem) {
      setError(problem);
      (problem.field === 'email' ? emailRef : passwordRef).current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      if (!isLogin) await register(email.trim(), password);
      const jwt = await login(email.trim(), password);
      setNotice(null);
      signIn(jwt);
      navigate(from, { replace: true });
    } catch (caught) {
      setError({ field: null, message: messageOf(caught) });
      setBusy(false);
    }
  };

  const errorId = `${id}-error`;
  return (
    <main className="flex min-h-screen items-start justify-center px-4 py-10 sm:items-center">
      <div className="w-full max-w-sm space-y-6">
        <div className="text-center">
          <p className="text-sm font-semibold uppercase tracking-wider text-indigo-700">Video → MP3</p>
          <h1 className="mt-2 text-2xl font-bold tracking-tight">{isLogin ? 'Log in' : 'Create an account'}</h1>
          <p className="mt-1 text-sm text-slate-600">
            {isLogin ? 'Convert your MP4 videos to MP3 audio.' : `An email and a password of ${MIN_PASSWORD_LENGTH} characters or more.`}
          </p>
        </div>
        {notice && !error && <Alert kind="info">{notice}</Alert>}
        <form noValidate onSubmit={submit} className="space-y-4 rounded-xl bg-white p-6 shadow-sm ring-1 ring-slate-200" aria-describedby={error ? errorId : undefined}>
          {error && (
            <div id={errorId}>
              <Alert kind="error">{error.message}</Alert>
            </div>
          )}
          <div className="space-y-1">
            <label htmlFor={`${id}-email`} className="block text-sm font-medium text-slate-800">
              Email
            </label>
            <input
              ref={emailRef}
              id={`${id}-email`}
              name="email"
              type="email"
              autoComplete="email"
              required
              value={email}
              onChange={(event) => setEmail(event.target.value)}
              aria-invalid={error?.field === 'email'}
              className={inputClass}
            />
          </div>
          <div className="space-y-1">
            <label htmlFor={`${id}-password`} className="block text-sm font-medium text-slate-800">
              Password
            </label>
            <input
              ref={passwordRef}
              id={`${id}-password`}
              name="password"
              type="password"
              autoComplete={isLogin ? 'current-password' : 'new-password'}
              required
              minLength={isLogin ? undefined : MIN_PASSWORD_LENGTH}
              value={password}
              onChange={(event) => setPassword(event.target.value)}
              aria-invalid={error?.field === 'password'}
              aria-describedby={isLogin ? undefined : `${id}-password-hint`}
              className={inputClass}
            />
            {!isLogin && (
              <p id={`${id}-password-hint`} className="text-xs text-slate-500">
                At least {MIN_PASSWORD_LENGTH} characters.
              </p>
            )}
          </div>
          <Button type="submit" disabled={busy} className="w-full">
            {busy ? (isLogin ? 'Logging in…' : 'Creating account…') : isLogin ? 'Log in' : 'Create account'}
          </Button>
        </form>
        <p className="text-center text-sm text-slate-600">
          {isLogin ? 'No account yet? ' : 'Already have an account? '}
          <Link to={isLogin ? '/register' : '/login'} className="font-semibold text-indigo-700 underline-offset-2 hover:underline">
            {isLogin ? 'Create one' : 'Log in'}
          </Link>
        </p>
      </div>
    </main>
  );
}
