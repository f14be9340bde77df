import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeGateway, json, makeToken, renderApp } from '../test/helpers';

afterEach(() => vi.unstubAllGlobals());

async function fill(user: ReturnType<typeof userEvent.setup>, email: string, password: string) {
  await user.type(screen.getByLabelText('Email'), email);
  await user.type(screen.getByLabelText('Password'), password);
}

describe('login', () => {
  it('shows "wrong email or password" on 401 and keeps the user on the page', async () => {
    fakeGateway({ 'POST /login': () => json({ error: 'invalid credentials' }, 401) });
    const user = userEvent.setup();
    renderApp('/login');
    await fill(user, 'ada@example.com', 'not-the-password');
    await user.click(screen.getByRole('button', { name: 'Log in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Wrong email or password.');
    expect(screen.getByRole('heading', { name: 'Log in' })).toBeInTheDocument();
    expect(sessionStorage.getItem('vidconv.token')).toBeNull();
  });

  it('says how long to wait after too many attempts', async () => {
    fakeGateway({ 'POST /login': () => json({ error: 'too many attempts' }, 429, { 'Retry-After': '30' }) });
    const user = userEvent.setup();
    renderApp('/login');
    await fill(user, 'ada@example.com', 'whatever1');
    await user.keyboard('{Enter}');
    expect(await screen.findByRole('alert')).toHaveTextContent('Too many attempts. Try again in 30 seconds.');
  });

  it('signs in, keeps the token in sessionStorage and opens the convert page', async () => {
    const token = makeToken({ username: 'ada@example.com' });
    fakeGateway({ 'POST /login': () => new Response(token, { status: 200 }) });
    const user = userEvent.setup();
    renderApp('/login');
    await fill(user, 'ada@example.com', 'correct-horse');
    await user.click(screen.getByRole('button', { name: 'Log in' }));
    expect(await screen.findByRole('heading', { name: 'Convert a video to MP3' })).toBeInTheDocument();
    expect(sessionStorage.getItem('vidconv.token')).toBe(token);
    expect(screen.getByText('ada@example.com')).toBeInTheDocument();
  });

  it('checks the email shape before asking the server', async () => {
    const calls = fakeGateway({});
    const user = userEvent.setup();
    renderApp('/login');
    await fill(user, 'not-an-email', 'password1');
    await user.click(screen.getByRole('button', { name: 'Log in' }));
    expect(screen.getByRole('alert')).toHaveTextContent('Enter an email address like name@example.com.');
    expect(screen.getByLabelText('Email')).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByLabelText('Email')).toHaveFocus();
    expect(calls).toHaveLength(0);
  });
});

describe('register', () => {
  it('refuses a password shorter than 8 characters without a request', async () => {
    const calls = fakeGateway({});
    const user = userEvent.setup();
    renderApp('/register');
    await fill(user, 'new@example.com', 'short');
    await user.click(screen.getByRole('button', { name: 'Create account' }));
    expect(screen.getByRole('alert')).toHaveTextContent('The password must be at least 8 characters long.');
    expect(calls).toHaveLength(0);
  });

  it('says the account exists on 409', async () => {
    fakeGateway({ 'POST /register': () => json({ error: 'user already exists' }, 409) });
    const user = userEvent.setup();
    renderApp('/register');
    await fill(user, 'taken@example.com', 'longenough');
    await user.click(screen.getByRole('button', { name: 'Create account' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('An account with this email already exists.');
  });

  it('shows the server reason on 400 and "unavailable" on 503', async () => {
    fakeGateway({ 'POST /register': () => json({ error: 'email is not a valid address' }, 400) });
    const user = userEvent.setup();
    renderApp('/register');
    await fill(user, 'odd@example.com', 'longenough');
    await user.click(screen.getByRole('button', { name: 'Create account' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Email is not a valid address.');

    fakeGateway({ 'POST /register': () => json({ error: 'auth service unavailable' }, 503) });
    await user.click(screen.getByRole('button', { name: 'Create account' }));
    await waitFor(() => expect(screen.getByRole('alert')).toHaveTextContent('The sign-in service is unavailable right now.'));
  });

  it('registers, signs in and opens the convert page', async () => {
    const token = makeToken({ username: 'new@example.com' });
    const calls = fakeGateway({
      'POST /register': () => new Response('created', { status: 201 }),
      'POST /login': () => new Response(token, { status: 200 }),
    });
    const user = userEvent.setup();
    renderApp('/register');
    await fill(user, 'new@example.com', 'longenough');
    await user.click(screen.getByRole('button', { name: 'Create account' }));
    expect(await screen.findByRole('heading', { name: 'Convert a video to MP3' })).toBeInTheDocument();
    expect(calls.map((c) => c.path)).toEqual(['/register', '/login']);
  });
});

describe('session', () => {
  it('sends a visitor without a session to login', () => {
    renderApp('/history');
    expect(screen.getByRole('heading', { name: 'Log in' })).toBeInTheDocument();
  });

  it('an expired stored token opens login with a message', () => {
    renderApp('/convert', { token: makeToken({ expiresIn: -60 }) });
    expect(screen.getByRole('heading', { name: 'Log in' })).toBeInTheDocument();
    expect(screen.getByRole('status')).toHaveTextContent('Your session has expired. Please log in again.');
    expect(sessionStorage.getItem('vidconv.token')).toBeNull();
  });

  it('a 401 from the gateway signs out and explains why', async () => {
    fakeGateway({ 'GET /jobs': () => json({ error: 'token expired' }, 401) });
    renderApp('/history', { token: makeToken() });
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeInTheDocument();
    expect(screen.getByRole('status')).toHaveTextContent('Your session has expired. Please log in again.');
  });

  it('logout forgets the token', async () => {
    fakeGateway({});
    const user = userEvent.setup();
    renderApp('/convert', { token: makeToken() });
    await user.click(screen.getByRole('button', { name: 'Log out' }));
    expect(screen.getByRole('heading', { name: 'Log in' })).toBeInTheDocument();
    expect(screen.getByRole('status')).toHaveTextContent('You have been logged out.');
    expect(sessionStorage.getItem('vidconv.token')).toBeNull();
  });
});
