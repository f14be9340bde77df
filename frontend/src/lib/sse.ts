// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, so the app
// reads /events with fetch() and leaves the text/event-stream format (WHATWG HTML "Server-sent
// events": fields, comments, CR/LF/CRLF, events split across chunks) to eventsource-parser.
import { EventSourceParserStream } from 'eventsource-parser/stream';
import type { EventSourceMessage } from 'eventsource-parser';

export type { EventSourceMessage };

/** The events of a text/event-stream body, in order; cancels the body when the caller stops early. */
export async function* readEvents(body: ReadableStream<Uint8Array<ArrayBuffer>>): AsyncGenerator<EventSourceMessage> {
  const reader = body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
