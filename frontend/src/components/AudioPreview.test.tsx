import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { MemoryRouter } from 'react-router-dom';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuthProvider } from '../auth/AuthContext';
import { at, fakeGateway, flask404, json, makeToken, renderApp } from '../test/helpers';
import AudioPreview from './AudioPreview';

const MP3 = '65f1c0ffee0123456789abcd';

function renderPreview(props = {}) {
  sessionStorage.setItem('vidconv.token', makeToken());
  return render(
    <MemoryRouter>
      <AuthProvider>
        <AudioPreview mp3Fid={MP3} videoName="talk.mp4" {...props} />
        <AudioPreview mp3Fid="65f1c0ffee0123456789abce" videoName="other.mp4" />
      </AuthProvider>
    </MemoryRouter>,
  );
}

afterEach(() => vi.unstubAllGlobals());

describe('audio preview', () => {
  it('sets the media cookie once, then streams /download with no token in the URL and shows the duration', async () => {
    const calls = fakeGateway({ 'POST /media-cookie': () => new Response(null, { status: 204 }) });
    renderPreview();
    const player = screen.getByLabelText('Preview of talk.mp3');
    expect(player.tagName).toBe('AUDIO');
    expect(player).toHaveAttribute('preload', 'metadata');
    // No source before the cookie is there: the first request would be a 401.
    expect(player).not.toHaveAttribute('src');
    await waitFor(() => expect(player).toHaveAttribute('src', `/api/download?fid=${MP3}`));
    expect(player.getAttribute('src')).not.toMatch(/token|bearer|ey[A-Za-z0-9_-]{10,}/i);

    // Two players, one cookie request, carrying the Bearer header.
    const cookieCalls = calls.filter((call) => call.path === '/media-cookie');
    expect(cookieCalls).toHaveLength(1);
    expect(at(cookieCalls, 0).headers.get('authorization')).toMatch(/^Bearer /);

    expect(screen.getAllByText('Loading the preview…')).toHaveLength(2);
    Object.defineProperty(player, 'duration', { configurable: true, value: 83.4 });
    fireEvent.loadedMetadata(player);
    expect(await screen.findByText('Duration 1:23')).toBeInTheDocument();
  });

  it('shows nothing against a gateway without previews (the original: 404)', async () => {
    const calls = fakeGateway({ 'POST /media-cookie': () => flask404() });
    const { container } = renderPreview();
    await waitFor(() => expect(calls.length).toBeGreaterThan(0));
    await waitFor(() => expect(container.querySelector('audio')).toBeNull());
  });

  it('says the preview is unavailable when the cookie cannot be set, and asks again next time', async () => {
    let answer = () => json({ error: 'the file store is unavailable' }, 503);
    const calls = fakeGateway({ 'POST /media-cookie': () => answer() });
    const first = renderPreview();
    expect(await screen.findAllByText(/The preview is unavailable right now/)).toHaveLength(2);
    first.unmount();

    answer = () => new Response(null, { status: 204 });
    renderPreview();
    await waitFor(() => expect(screen.getByLabelText('Preview of talk.mp3')).toHaveAttribute('src'));
    expect(calls.filter((call) => call.path === '/media-cookie').length).toBeGreaterThanOrEqual(2);
  });

  it('tells when the browser cannot play the file', async () => {
    fakeGateway({ 'POST /media-cookie': () => new Response(null, { status: 204 }) });
    renderPreview();
    const player = screen.getByLabelText('Preview of talk.mp3');
    await waitFor(() => expect(player).toHaveAttribute('src'));
    fireEvent.error(player);
    expect(await screen.findByText(/cannot play the preview; download the MP3 instead/)).toBeInTheDocument();
  });
});

describe('logging out', () => {
  it('clears the media cookie', async () => {
    const calls = fakeGateway({
      'GET /jobs': () => json({ jobs: [], page: 1, per_page: 20, total: 0 }),
      'DELETE /media-cookie': () => new Response(null, { status: 204 }),
    });
    renderApp('/convert', { token: makeToken() });
    fireEvent.click(screen.getByRole('button', { name: 'Log out' }));
    await waitFor(() => expect(calls.some((call) => call.method === 'DELETE' && call.path === '/media-cookie')).toBe(true));
  });
});
