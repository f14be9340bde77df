import { describe, expect, it } from 'vitest';
import { readEvents } from './sse';

/** A body that delivers `chunks` one read at a time, as a network would. */
function body(chunks: string[]): ReadableStream<Uint8Array<ArrayBuffer>> {
  const encoder = new TextEncoder();
  const queue = [...chunks];
  return new ReadableStream({
    pull(controller) {
      const next = queue.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(encoder.encode(next));
    },
  });
}

async function collect(chunks: string[]) {
  const events = [];
  for await (const event of readEvents(body(chunks))) events.push({ event: event.event ?? 'message', data: event.data, id: event.id });
  return events;
}

describe('readEvents', () => {
  it('parses data events terminated by a blank line', async () => {
    expect(await collect(['data: {"a":1}\n\ndata: two\n\n'])).toEqual([
      { event: 'message', data: '{"a":1}', id: undefined },
      { event: 'message', data: 'two', id: undefined },
    ]);
  });

  it('keeps an event split across chunks until it is complete', async () => {
    expect(await collect(['da', 'ta: hel', 'lo\n', '\n'])).toEqual([{ event: 'message', data: 'hello', id: undefined }]);
    // An unfinished event at the end of the stream is dropped, as EventSource does.
    expect(await collect(['data: half'])).toEqual([]);
  });

  it('joins multi-line data, reads event and id, ignores comments', async () => {
    expect(await collect([': keep-alive\nevent: status\nid: 7\ndata: one\ndata: two\n\n'])).toEqual([{ event: 'status', data: 'one\ntwo', id: '7' }]);
  });

  it('accepts CRLF and CR line endings, including a CRLF split between chunks', async () => {
    expect(await collect(['data: a\r', '\n\r\ndata: b\r\r', 'data: c\n\n'])).toEqual([
      { event: 'message', data: 'a', id: undefined },
      { event: 'message', data: 'b', id: undefined },
      { event: 'message', data: 'c', id: undefined },
    ]);
  });

  it('drops an event without data and keeps only one leading space of a value', async () => {
    expect(await collect(['event: ping\n\ndata:  spaced\n\n'])).toEqual([{ event: 'message', data: ' spaced', id: undefined }]);
  });
});
