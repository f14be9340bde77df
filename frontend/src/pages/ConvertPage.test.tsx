import { act, fireEvent, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeXhr, at, fakeGateway, type FakeRoute, flask404, json, makeToken, renderApp } from '../test/helpers';

function sse(lines: string[]) {
  const encoder = new TextEncoder();
  const queue = [...lines];
  return new Response(
    new ReadableStream({
      pull(controller) {
        if (queue.length) controller.enqueue(encoder.encode(queue.shift()));
        else controller.close();
      },
    }),
    { status: 200, headers: { 'Content-Type': 'text/event-stream' } },
  );
}

const video = () => new File([new Uint8Array(4096)], 'holiday.mp4', { type: 'video/mp4' });

/** Opens the convert page signed in, picks holiday.mp4 and starts the upload; returns its fake XHR. */
async function startUpload() {
  const user = userEvent.setup();
  renderApp('/convert', { token: makeToken() });
  await user.upload(screen.getByLabelText('Choose an MP4 video'), video());
  await user.click(screen.getByRole('button', { name: 'Upload and convert' }));
  return FakeXhr.latest();
}

beforeEach(() => {
  FakeXhr.last = null;
  FakeXhr.all = [];
  vi.stubGlobal('XMLHttpRequest', FakeXhr);
});
afterEach(() => vi.unstubAllGlobals());

describe('convert page', () => {
  it('refuses a file that is not an MP4', async () => {
    fakeGateway({});
    const user = userEvent.setup({ applyAccept: false });
    renderApp('/convert', { token: makeToken() });
    await user.upload(screen.getByLabelText('Choose an MP4 video'), new File(['x'], 'notes.txt', { type: 'text/plain' }));
    expect(screen.getByRole('alert')).toHaveTextContent('"notes.txt" is not an MP4 video.');
    expect(screen.getByRole('button', { name: 'Upload and convert' })).toBeDisabled();
  });

  it('accepts a dropped MP4', () => {
    fakeGateway({});
    renderApp('/convert', { token: makeToken() });
    fireEvent.drop(screen.getByTestId('drop-zone'), { dataTransfer: { files: [video()] } });
    expect(screen.getByText('holiday.mp4')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Upload and convert' })).toBeEnabled();
  });

  it('uploads with progress and speed, follows the conversion live, then offers the download', async () => {
    const calls = fakeGateway({
      'GET /events': () =>
        sse([
          'data: {"status":"processing","state":"queued","progress":0}\n\n',
          'data: {"status":"processing","state":"processing","progress":55}\n\n',
          'data: {"status":"completed","mp3_fid":"beef"}\n\n',
        ]),
    });
    const user = userEvent.setup();
    renderApp('/convert', { token: makeToken() });
    await user.upload(screen.getByLabelText('Choose an MP4 video'), video());
    await user.selectOptions(screen.getByLabelText(/MP3 quality/), '192 kb/s');
    await user.click(screen.getByRole('button', { name: 'Upload and convert' }));

    const xhr = FakeXhr.latest();
    expect(xhr.method).toBe('POST');
    expect(xhr.url).toBe('/api/upload');
    expect(xhr.headers.Authorization).toMatch(/^Bearer /);
    expect(xhr.body.get('bitrate')).toBe('192');
    expect(xhr.body.get('vbr_quality')).toBeNull();
    expect(xhr.file().name).toBe('holiday.mp4');

    act(() => xhr.progress(2048, 4096));
    const bar = screen.getByRole('progressbar', { name: 'Upload' });
    expect(bar).toHaveAttribute('aria-valuenow', '50');
    expect(bar.getAttribute('aria-valuetext')).toMatch(/^50% · 2.0 KB of 4.0 KB( · .+\/s)?$/);

    act(() => xhr.respond(200, { status: 'success', video_fid: 'cafe' }));
    expect(await screen.findByRole('button', { name: 'Download holiday.mp3' })).toBeInTheDocument();
    expect(within(screen.getByTestId('job-state')).getByText('Done')).toBeInTheDocument();
    expect(calls.find((c) => c.path === '/events')?.query.get('fid')).toBe('cafe');
  });

  it('sends a VBR quality as vbr_quality', async () => {
    fakeGateway({ 'GET /events': () => sse([]), 'GET /status': () => json({ status: 'processing', state: 'queued', progress: 0 }) });
    const user = userEvent.setup();
    renderApp('/convert', { token: makeToken() });
    await user.upload(screen.getByLabelText('Choose an MP4 video'), video());
    await user.selectOptions(screen.getByLabelText(/MP3 quality/), 'vbr:2');
    await user.click(screen.getByRole('button', { name: 'Upload and convert' }));
    expect(FakeXhr.latest().body.get('vbr_quality')).toBe('2');
    expect(FakeXhr.latest().body.get('bitrate')).toBeNull();
  });

  it('shows the gateway error when the upload is refused', async () => {
    fakeGateway({});
    const xhr = await startUpload();
    act(() => xhr.respond(400, { error: 'the file is not an MP4 video' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('The file is not an MP4 video.');
    expect(screen.getByRole('button', { name: 'Upload and convert' })).toBeEnabled();
  });

  it.each([
    [415, 'this file is a PDF document, not a video or audio file', 'This file is a PDF document, not a video or audio file.'],
    [422, 'this video has no audio track, so there is nothing to convert to MP3', 'This video has no audio track, so there is nothing to convert to MP3.'],
  ])('shows why the gateway refused the content (%i)', async (status, error, shown) => {
    fakeGateway({});
    const xhr = await startUpload();
    act(() => xhr.respond(status, { error }));
    expect(await screen.findByRole('alert')).toHaveTextContent(shown);
    expect(screen.getByRole('button', { name: 'Upload and convert' })).toBeEnabled();
  });

  it('a repeat of a finished conversion shows completed at once, with its download', async () => {
    // The gateway completes a repeat before answering the upload: the first status is final.
    fakeGateway({ 'GET /events': () => sse(['event: status\ndata: {"status":"completed","state":"completed","progress":100,"mp3_fid":"5ab1e"}\n\n']) });
    const xhr = await startUpload();
    act(() => xhr.respond(200, { status: 'success', video_fid: 'f00d' }));
    expect(await screen.findByRole('button', { name: 'Download holiday.mp3' })).toBeInTheDocument();
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('explains a failed conversion', async () => {
    fakeGateway({ 'GET /events': () => sse(['data: {"status":"failed","error":"the video has no audio track"}\n\n']) });
    const xhr = await startUpload();
    act(() => xhr.respond(200, { status: 'success', video_fid: 'f00d' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('The conversion failed: the video has no audio track.');
  });

  it('a 401 during the upload sends the user to login with a message', async () => {
    fakeGateway({});
    const xhr = await startUpload();
    act(() => xhr.respond(401, { error: 'token expired' }));
    expect(await screen.findByRole('heading', { name: 'Log in' })).toBeInTheDocument();
    expect(screen.getByRole('status')).toHaveTextContent('Your session has expired.');
  });
});

describe('convert page memory', () => {
  it('shows the conversion again after a visit to History, until "convert another"', async () => {
    fakeGateway({
      'GET /events': () => sse(['data: {"status":"completed","mp3_fid":"beef"}\n\n']),
      'GET /jobs': () => json({ jobs: [], page: 1, per_page: 20, total: 0 }),
    });
    const xhr = await startUpload();
    act(() => xhr.respond(200, { status: 'success', video_fid: 'cafe' }));
    expect(await screen.findByRole('button', { name: 'Download holiday.mp3' })).toBeInTheDocument();

    const user = userEvent.setup();
    await user.click(within(screen.getByRole('navigation', { name: 'Main' })).getByRole('link', { name: 'History' }));
    expect(await screen.findByRole('heading', { name: 'History' })).toBeInTheDocument();
    await user.click(within(screen.getByRole('navigation', { name: 'Main' })).getByRole('link', { name: 'Convert' }));
    expect(await screen.findByRole('button', { name: 'Download holiday.mp3' })).toBeInTheDocument();

    await user.click(screen.getByRole('button', { name: 'Convert another video' }));
    expect(screen.getByRole('button', { name: 'Upload and convert' })).toBeDisabled();
    expect(sessionStorage.getItem('vidconv.currentJob')).toBeNull();
  });
});

describe('convert page against the original gateway', () => {
  it('without /events it polls /status every 3 s and offers the download when the MP3 exists', async () => {
    let polls = 0;
    const calls = fakeGateway({
      'GET /events': () => flask404(),
      'GET /status': () => {
        polls += 1;
        return json(polls < 2 ? { status: 'processing' } : { status: 'completed', mp3_fid: '65f0c0ffee' });
      },
    });
    const xhr = await startUpload();
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      // The original's /upload answer.
      act(() => xhr.respond(200, { status: 'success', video_fid: '65f0beef' }));
      expect(await screen.findByText('Live updates unavailable; checking every 3 seconds.')).toBeInTheDocument();
      expect(within(screen.getByTestId('job-state')).getByText('Converting')).toBeInTheDocument();
      // No progress number from the original: no made-up percentage either.
      expect(screen.getByRole('progressbar', { name: 'Conversion' })).toHaveAttribute('aria-valuetext', 'Converting…');
      expect(polls).toBe(1);
      await vi.advanceTimersByTimeAsync(3000);
      expect(await screen.findByRole('button', { name: 'Download holiday.mp3' })).toBeInTheDocument();
      expect(polls).toBe(2);
    } finally {
      vi.useRealTimers();
    }
    expect(screen.queryByRole('alert')).toBeNull();
    expect(calls.filter((c) => c.path === '/events')).toHaveLength(1);
    expect(calls.filter((c) => c.path === '/status').every((c) => c.query.get('fid') === '65f0beef')).toBe(true);
  });
});

describe('convert page with the gateway\'s stream limits', () => {
  it('polls /status when the gateway refuses another stream (429), without an error', async () => {
    const calls = fakeGateway({
      'GET /events': () => json({ error: 'too many open event streams' }, 429),
      'GET /status': () => json({ status: 'completed', state: 'completed', progress: 100, mp3_fid: 'beef' }),
    });
    const xhr = await startUpload();
    act(() => xhr.respond(200, { status: 'success', video_fid: 'cafe' }));
    expect(await screen.findByRole('button', { name: 'Download holiday.mp3' })).toBeInTheDocument();
    expect(screen.queryByRole('alert')).toBeNull();
    // The audio player's cookie request, once done, is not what this test is about.
    expect(calls.map((c) => c.path).filter((path) => path !== '/media-cookie')).toEqual(['/events', '/status']);
  });

  it('reopens the stream when it ends before the conversion does', async () => {
    const streams = [
      ['event: status\ndata: {"status":"processing","state":"processing","progress":25}\n\n'],
      ['event: status\ndata: {"status":"processing","state":"processing","progress":25}\n\n', 'event: status\ndata: {"status":"completed","state":"completed","progress":100,"mp3_fid":"beef"}\n\n'],
    ];
    const calls = fakeGateway({ 'GET /events': () => sse(streams.shift() ?? []) });
    const xhr = await startUpload();
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      act(() => xhr.respond(200, { status: 'success', video_fid: 'cafe' }));
      await screen.findByText('25%');
      expect(screen.getByRole('progressbar', { name: 'Conversion' })).toHaveAttribute('aria-valuenow', '25');
      // The first stream ended without a final state: the page waits at most a second, then reopens it.
      await vi.advanceTimersByTimeAsync(1000);
      expect(await screen.findByRole('button', { name: 'Download holiday.mp3' })).toBeInTheDocument();
    } finally {
      vi.useRealTimers();
    }
    expect(screen.queryByText(/Live updates unavailable/)).toBeNull();
    expect(screen.queryByRole('alert')).toBeNull();
    // The audio player's cookie request, once done, is not what this test is about.
    expect(calls.map((c) => c.path).filter((path) => path !== '/media-cookie')).toEqual(['/events', '/events']);
  });
});

const mp4 = (name: string, size = 4096) => new File([new Uint8Array(size)], name, { type: 'video/mp4' });

/** /events answers per upload id: `{fid: [sse lines]}`. */
function eventsByFid(streams: Record<string, string[]>): FakeRoute {
  return ({ query }) => sse(streams[query.get('fid') ?? ''] ?? []);
}

describe('convert page batches', () => {
  it('uploads several videos one after another; a refused upload does not stop the others', async () => {
    const calls = fakeGateway({
      'GET /events': eventsByFid({
        f1: ['event: status\ndata: {"status":"completed","state":"completed","progress":100,"mp3_fid":"m1"}\n\n'],
        f3: ['event: status\ndata: {"status":"completed","state":"completed","progress":100,"mp3_fid":"m3"}\n\n'],
      }),
    });
    const user = userEvent.setup();
    renderApp('/convert', { token: makeToken() });
    await user.upload(screen.getByLabelText('Choose an MP4 video'), [mp4('a.mp4'), mp4('b.mp4'), mp4('c.mp4')]);
    expect(screen.getByText('a.mp4, b.mp4, c.mp4')).toBeInTheDocument();
    await user.selectOptions(screen.getByLabelText(/MP3 quality/), 'vbr:2');
    await user.click(screen.getByRole('button', { name: 'Upload and convert 3 videos' }));

    // One upload at a time: the others wait.
    expect(FakeXhr.all).toHaveLength(1);
    expect(at(FakeXhr.all, 0).file().name).toBe('a.mp4');
    expect(within(screen.getByRole('region', { name: 'b.mp4' })).getByText('Waiting')).toBeInTheDocument();
    act(() => at(FakeXhr.all, 0).progress(2048, 4096));
    expect(screen.getByRole('progressbar', { name: 'Upload of a.mp4' })).toHaveAttribute('aria-valuenow', '50');
    expect(screen.getByRole('status')).toHaveTextContent('0 of 3 videos uploaded, uploading a.mp4.');

    act(() => at(FakeXhr.all, 0).respond(200, { status: 'success', video_fid: 'f1' }));
    await waitFor(() => expect(FakeXhr.all).toHaveLength(2));
    expect(at(FakeXhr.all, 1).file().name).toBe('b.mp4');
    act(() => at(FakeXhr.all, 1).respond(400, { error: 'the file is empty' }));
    await waitFor(() => expect(FakeXhr.all).toHaveLength(3));
    act(() => at(FakeXhr.all, 2).respond(200, { status: 'success', video_fid: 'f3' }));

    expect(await screen.findByRole('button', { name: 'Download a.mp3' })).toBeInTheDocument();
    expect(await screen.findByRole('button', { name: 'Download c.mp3' })).toBeInTheDocument();
    expect(within(screen.getByRole('region', { name: 'b.mp4' })).getByRole('alert')).toHaveTextContent('The upload failed: The file is empty.');
    expect(screen.getByRole('status')).toHaveTextContent('2 of 3 videos uploaded, 1 failed.');
    expect(FakeXhr.all.map((xhr) => xhr.body.get('vbr_quality'))).toEqual(['2', '2', '2']);
    expect(calls.filter((c) => c.path === '/events').map((c) => c.query.get('fid')).sort()).toEqual(['f1', 'f3']);

    await user.click(screen.getByRole('button', { name: 'Convert more videos' }));
    expect(screen.getByRole('button', { name: 'Upload and convert' })).toBeDisabled();
    expect(sessionStorage.getItem('vidconv.currentBatch')).toBeNull();
  });

  it('shows a failed conversion next to the finished ones, and again after a visit to History', async () => {
    fakeGateway({
      'GET /events': eventsByFid({
        f1: ['event: status\ndata: {"status":"completed","state":"completed","progress":100,"mp3_fid":"m1"}\n\n'],
        f2: ['event: status\ndata: {"status":"failed","state":"failed","error":"the file is not a video or audio file that can be read"}\n\n'],
      }),
      'GET /jobs': () => json({ jobs: [], page: 1, per_page: 20, total: 0 }),
    });
    const user = userEvent.setup();
    renderApp('/convert', { token: makeToken() });
    fireEvent.drop(screen.getByTestId('drop-zone'), { dataTransfer: { files: [mp4('good.mp4'), mp4('bad.mp4')] } });
    await user.click(screen.getByRole('button', { name: 'Upload and convert 2 videos' }));
    act(() => at(FakeXhr.all, 0).respond(200, { status: 'success', video_fid: 'f1' }));
    await waitFor(() => expect(FakeXhr.all).toHaveLength(2));
    act(() => at(FakeXhr.all, 1).respond(200, { status: 'success', video_fid: 'f2' }));

    expect(await screen.findByRole('button', { name: 'Download good.mp3' })).toBeInTheDocument();
    expect(await screen.findByText(/The conversion failed: the file is not a video or audio file that can be read/)).toBeInTheDocument();
    expect(screen.getByRole('progressbar', { name: 'Conversion of good.mp4' })).toHaveAttribute('aria-valuenow', '100');

    await user.click(within(screen.getByRole('navigation', { name: 'Main' })).getByRole('link', { name: 'History' }));
    expect(await screen.findByRole('heading', { name: 'History' })).toBeInTheDocument();
    await user.click(within(screen.getByRole('navigation', { name: 'Main' })).getByRole('link', { name: 'Convert' }));
    expect(await screen.findByRole('button', { name: 'Download good.mp3' })).toBeInTheDocument();
    expect(await screen.findByText(/The conversion failed: the file is not a video/)).toBeInTheDocument();
    expect(FakeXhr.all).toHaveLength(2);
  });

  it('leaves out dropped files that are not MP4s, naming them', () => {
    fakeGateway({});
    renderApp('/convert', { token: makeToken() });
    const notes = new File(['x'], 'notes.txt', { type: 'text/plain' });
    fireEvent.drop(screen.getByTestId('drop-zone'), { dataTransfer: { files: [mp4('a.mp4'), notes, mp4('b.mp4')] } });
    expect(screen.getByRole('alert')).toHaveTextContent('"notes.txt" is not an MP4 video.');
    expect(screen.getByText('a.mp4, b.mp4')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Upload and convert 2 videos' })).toBeEnabled();
  });

  it('cancelling stops the upload in progress and the ones after it', async () => {
    fakeGateway({});
    const user = userEvent.setup();
    renderApp('/convert', { token: makeToken() });
    await user.upload(screen.getByLabelText('Choose an MP4 video'), [mp4('a.mp4'), mp4('b.mp4')]);
    await user.click(screen.getByRole('button', { name: 'Upload and convert 2 videos' }));
    await user.click(screen.getByRole('button', { name: 'Cancel the remaining uploads' }));

    expect(await screen.findByRole('status')).toHaveTextContent('0 of 2 videos uploaded, 2 cancelled.');
    expect(FakeXhr.all).toHaveLength(1);
    expect(screen.getByRole('button', { name: 'Convert more videos' })).toBeInTheDocument();
  });
});
