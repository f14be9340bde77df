import { act, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuthProvider } from '../auth/AuthContext';
import { fakeGateway, makeToken } from '../test/helpers';
import JobProgress from './JobProgress';

/** An /events answer whose status events the test sends one by one with `send`. */
function liveEvents() {
  const encoder = new TextEncoder();
  let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  const response = new Response(
    new ReadableStream({
      start(c) {
        controller = c;
      },
    }),
    { status: 200, headers: { 'Content-Type': 'text/event-stream' } },
  );
  const send = (status: object) => controller?.enqueue(encoder.encode(`event: status\ndata: ${JSON.stringify(status)}\n\n`));
  return { response, send, close: () => controller?.close() };
}

function renderProgress() {
  sessionStorage.setItem('vidconv.token', makeToken());
  return render(
    <AuthProvider>
      <JobProgress videoFid="cafe" filename="talk.mp4" />
    </AuthProvider>,
  );
}

const bar = () => screen.getByRole('progressbar', { name: 'Conversion' });

afterEach(() => {
  vi.unstubAllGlobals();
  sessionStorage.clear();
});

describe('job progress', () => {
  it('shows the time left while queued and processing, as it falls, and none once done', async () => {
    const events = liveEvents();
    fakeGateway({ 'GET /events': () => events.response });
    renderProgress();

    await act(async () => events.send({ status: 'processing', state: 'queued', progress: 0, eta_secs: 120 }));
    expect(await screen.findByText('Waiting for a converter… · about 2 min left')).toBeInTheDocument();

    await act(async () => events.send({ status: 'processing', state: 'processing', progress: 20, eta_secs: 40 }));
    expect(await screen.findByText('20% · about 40 s left')).toBeInTheDocument();
    expect(bar()).toHaveAttribute('aria-valuetext', '20% · about 40 s left');

    await act(async () => events.send({ status: 'processing', state: 'processing', progress: 90, eta_secs: 3 }));
    expect(await screen.findByText('90% · less than 5 s left')).toBeInTheDocument();

    await act(async () => {
      events.send({ status: 'completed', state: 'completed', progress: 100, mp3_fid: 'beef' });
      events.close();
    });
    expect(await screen.findByRole('button', { name: 'Download talk.mp3' })).toBeInTheDocument();
    expect(screen.queryByText(/left/)).toBeNull();
  });

  it('shows no estimate when the gateway has none (the original gateway, nothing measured yet)', async () => {
    const events = liveEvents();
    fakeGateway({ 'GET /events': () => events.response });
    renderProgress();
    await act(async () => events.send({ status: 'processing', state: 'processing', progress: 35 }));
    expect(await screen.findByText('35%')).toBeInTheDocument();
    expect(screen.queryByText(/left/)).toBeNull();
  });

  it('says when a finished conversion expires, and nothing without retention', async () => {
    const inThreeHours = new Date(Date.now() + 3 * 3600 * 1000 + 30_000).toISOString();
    const events = liveEvents();
    fakeGateway({ 'GET /events': () => events.response });
    renderProgress();
    await act(async () => {
      events.send({ status: 'completed', state: 'completed', progress: 100, mp3_fid: 'beef', expires_at: inThreeHours });
      events.close();
    });
    expect(await screen.findByTestId('job-expiry')).toHaveTextContent('Expires in 3 h: the video and its MP3 are then removed.');
  });

  it('shows no expiry when the gateway gives none', async () => {
    const events = liveEvents();
    fakeGateway({ 'GET /events': () => events.response });
    renderProgress();
    await act(async () => {
      events.send({ status: 'completed', state: 'completed', progress: 100, mp3_fid: 'beef' });
      events.close();
    });
    expect(await screen.findByRole('button', { name: 'Download talk.mp3' })).toBeInTheDocument();
    expect(screen.queryByTestId('job-expiry')).toBeNull();
  });
});
