import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { at, fakeGateway, flask404, json, makeToken, renderApp } from '../test/helpers';

const JOBS = [
  { video_fid: 'a1', filename: 'talk.mp4', state: 'completed', status: 'completed', progress: 100, mp3_fid: 'm1', error: null, size: 1048576, created_at: '2026-11-27T18:00:00Z', updated_at: '2026-11-27T18:01:00Z' },
  { video_fid: 'b2', filename: 'broken.mp4', state: 'failed', status: 'failed', progress: 0, mp3_fid: null, error: 'the video has no audio track', size: 2048, created_at: '2026-11-27T17:00:00Z', updated_at: '2026-11-27T17:00:05Z' },
  { video_fid: 'c3', filename: 'long.mp4', state: 'processing', status: 'processing', progress: 42, mp3_fid: null, error: null, size: 4096, created_at: '2026-11-27T16:00:00Z', updated_at: '2026-11-27T16:00:05Z' },
];

afterEach(() => vi.unstubAllGlobals());

describe('history page', () => {
  it('lists the jobs with their state, progress, reason and download', async () => {
    fakeGateway({ 'GET /jobs': () => json({ jobs: JOBS, page: 1, per_page: 20, total: 3 }) });
    renderApp('/history', { token: makeToken() });
    const rows = await screen.findAllByTestId('job-row');
    expect(rows).toHaveLength(3);
    expect(within(at(rows, 0)).getByText('talk.mp4')).toBeInTheDocument();
    expect(within(at(rows, 0)).getByText('Done')).toBeInTheDocument();
    expect(within(at(rows, 0)).getByRole('button', { name: 'Download talk.mp3' })).toBeInTheDocument();
    expect(within(at(rows, 1)).getByText('Failed')).toBeInTheDocument();
    expect(within(at(rows, 1)).getByText('Reason: the video has no audio track')).toBeInTheDocument();
    expect(within(at(rows, 1)).queryByRole('button', { name: /Download/ })).toBeNull();
    expect(within(at(rows, 2)).getByRole('progressbar')).toHaveAttribute('aria-valuenow', '42');
  });

  it('shows when each finished conversion expires, when the gateway says so', async () => {
    const inTwoDays = new Date(Date.now() + 2 * 86400 * 1000 + 60_000).toISOString();
    const jobs = [{ ...JOBS[0], expires_at: inTwoDays }, JOBS[1], JOBS[2]];
    fakeGateway({ 'GET /jobs': () => json({ jobs, page: 1, per_page: 20, total: 3 }) });
    renderApp('/history', { token: makeToken() });
    const rows = await screen.findAllByTestId('job-row');
    expect(within(at(rows, 0)).getByText(/expires in 2 days/)).toBeInTheDocument();
    expect(within(at(rows, 1)).queryByText(/expires/)).toBeNull();
    expect(within(at(rows, 2)).queryByText(/expires/)).toBeNull();
  });

  it('plays a finished conversion only when asked, one cookie request for the page', async () => {
    const calls = fakeGateway({
      'GET /jobs': () => json({ jobs: JOBS, page: 1, per_page: 20, total: 3 }),
      'POST /media-cookie': () => new Response(null, { status: 204 }),
    });
    const user = userEvent.setup();
    renderApp('/history', { token: makeToken() });
    const rows = await screen.findAllByTestId('job-row');
    expect(document.querySelector('audio')).toBeNull();
    expect(within(at(rows, 1)).queryByRole('button', { name: /Play/ })).toBeNull();
    await user.click(within(at(rows, 0)).getByRole('button', { name: 'Play talk.mp4' }));
    const player = within(at(rows, 0)).getByLabelText('Preview of talk.mp3');
    await waitFor(() => expect(player.getAttribute('src')).toMatch(/^\/api\/download\?fid=/));
    expect(within(at(rows, 0)).queryByRole('button', { name: 'Play talk.mp4' })).toBeNull();
    expect(calls.filter((c) => c.path === '/media-cookie')).toHaveLength(1);
  });

  it('deletes a job after confirmation', async () => {
    const calls = fakeGateway({
      'GET /jobs': () => json({ jobs: JOBS, page: 1, per_page: 20, total: 3 }),
      'DELETE /jobs/:id': () => new Response(null, { status: 204 }),
    });
    const user = userEvent.setup();
    renderApp('/history', { token: makeToken() });
    await user.click(await screen.findByRole('button', { name: 'Delete broken.mp4' }));
    await user.click(screen.getByRole('button', { name: 'Confirm delete broken.mp4' }));
    expect(await screen.findByRole('status')).toHaveTextContent('Deleted broken.mp4.');
    expect(screen.queryByText('broken.mp4')).toBeNull();
    expect(calls.find((c) => c.method === 'DELETE')?.path).toBe('/jobs/b2');
  });

  it('cancelling the confirmation keeps the job', async () => {
    const calls = fakeGateway({ 'GET /jobs': () => json({ jobs: JOBS, page: 1, per_page: 20, total: 3 }) });
    const user = userEvent.setup();
    renderApp('/history', { token: makeToken() });
    await user.click(await screen.findByRole('button', { name: 'Delete talk.mp4' }));
    await user.click(screen.getByRole('button', { name: 'Cancel' }));
    expect(screen.getByText('talk.mp4')).toBeInTheDocument();
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false);
  });

  it('says so when there are no conversions', async () => {
    fakeGateway({ 'GET /jobs': () => json({ jobs: [], page: 1, per_page: 20, total: 0 }) });
    renderApp('/history', { token: makeToken() });
    expect(await screen.findByText('No conversions yet.')).toBeInTheDocument();
    expect(screen.getByRole('link', { name: 'Convert your first video' })).toHaveAttribute('href', '/convert');
  });

  it('pages through a long history', async () => {
    const many = Array.from({ length: 20 }, (_, i) => ({ ...JOBS[0], video_fid: `v${i}`, filename: `clip${i}.mp4` }));
    const calls = fakeGateway({
      'GET /jobs': ({ query }) => json({ jobs: query.get('page') === '1' ? many : [JOBS[1]], page: Number(query.get('page')), per_page: 20, total: 21 }),
    });
    const user = userEvent.setup();
    renderApp('/history', { token: makeToken() });
    expect(await screen.findByText('Page 1 of 2')).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Older' }));
    expect(await screen.findByText('broken.mp4')).toBeInTheDocument();
    expect(calls.at(-1)?.query.get('page')).toBe('2');
  });
});

describe('history answers', () => {
  it('a late answer for page 1 never replaces page 2 once the user moved on', async () => {
    const many = Array.from({ length: 20 }, (_, i) => ({ ...JOBS[0], video_fid: `v${i}`, filename: `clip${i}.mp4` }));
    const page1 = () => json({ jobs: many, page: 1, per_page: 20, total: 21 });
    // The second answer for page 1 (the Refresh below) waits until the test releases it.
    let releasePage1: () => void = () => {};
    const latePage1 = new Promise<Response>((resolve) => {
      releasePage1 = () => resolve(page1());
    });
    let page1Asks = 0;
    fakeGateway({
      'GET /jobs': ({ query }) => {
        if (query.get('page') === '2') return json({ jobs: [JOBS[1]], page: 2, per_page: 20, total: 21 });
        page1Asks += 1;
        return page1Asks === 1 ? page1() : latePage1;
      },
    });
    const user = userEvent.setup();
    renderApp('/history', { token: makeToken() });
    expect(await screen.findByText('Page 1 of 2')).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Refresh' }));
    await waitFor(() => expect(page1Asks).toBe(2));
    await user.click(screen.getByRole('button', { name: 'Older' }));
    expect(await screen.findByText('broken.mp4')).toBeInTheDocument();

    await act(async () => releasePage1());
    // Give the late answer every chance to land.
    await act(() => new Promise((resolve) => setTimeout(resolve, 50)));
    expect(screen.getByText('Page 2 of 2')).toBeInTheDocument();
    expect(screen.getAllByTestId('job-row')).toHaveLength(1);
    expect(screen.getByText('broken.mp4')).toBeInTheDocument();
    expect(screen.queryByText('clip0.mp4')).toBeNull();
  });
});

describe('history refresh', () => {
  it('reloads while a job is running and stops once none is', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      let calls = 0;
      fakeGateway({
        'GET /jobs': () => {
          calls += 1;
          const job = calls < 2 ? JOBS[2] : { ...JOBS[2], state: 'completed', status: 'completed', progress: 100, mp3_fid: 'm3' };
          return json({ jobs: [job], page: 1, per_page: 20, total: 1 });
        },
      });
      renderApp('/history', { token: makeToken() });
      expect(await screen.findByRole('progressbar')).toHaveAttribute('aria-valuenow', '42');
      await vi.advanceTimersByTimeAsync(3000);
      expect(await screen.findByText('Done')).toBeInTheDocument();
      await vi.advanceTimersByTimeAsync(10_000);
      expect(calls).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('history against the original gateway', () => {
  it('says history needs the new gateway when /jobs is Flask\'s 404, with no error', async () => {
    const calls = fakeGateway({ 'GET /jobs': () => flask404() });
    renderApp('/history', { token: makeToken() });
    const notice = (await screen.findByText(/History needs the new gateway/)).closest<HTMLElement>('[role="status"]');
    expect(notice).toHaveTextContent('History needs the new gateway: this server keeps no list of conversions.');
    expect(within(notice ?? document.body).getByRole('link', { name: 'Convert' })).toHaveAttribute('href', '/convert');
    expect(screen.queryByRole('alert')).toBeNull();
    expect(screen.queryByText('Loading…')).toBeNull();
    expect(screen.queryByText('No conversions yet.')).toBeNull();
    expect(screen.queryByRole('button', { name: 'Refresh' })).toBeNull();
    expect(calls).toHaveLength(1);
  });

  it('still shows a real error as an error', async () => {
    fakeGateway({ 'GET /jobs': () => json({ error: 'database unavailable' }, 503) });
    renderApp('/history', { token: makeToken() });
    expect(await screen.findByRole('alert')).toHaveTextContent('Database unavailable.');
    expect(screen.queryByText(/History needs the new gateway/)).toBeNull();
  });
});
