// An incremental parser for the text/event-stream format (WHATWG HTML "Server-sent events").
// EventSource cannot send an Authorization header, so the app reads the stream with fetch()
// and feeds the decoded text in here chunk by chunk.

/** Parses Server-Sent Events from text chunks; `push` returns the events completed so far. */
export class SseParser {
  constructor() {
    this.buffer = '';
    this.reset();
  }

  reset() {
    this.data = [];
    this.event = '';
    this.id = undefined;
  }

  /** Feed a chunk of decoded text; returns `[{event, data, id}]` for each blank-line-terminated event. */
  push(chunk) {
    this.buffer += chunk;
    const events = [];
    // Lines end with CRLF, LF or CR. A trailing CR may be half of a CRLF split across chunks: keep it.
    for (;;) {
      const match = /\r\n|\n|\r/.exec(this.buffer);
      if (!match) break;
      if (match[0] === '\r' && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  line(line) {
    if (line === '') {
      if (this.data.length === 0) {
        this.reset();
        return null;
      }
      const event = { event: this.event || 'message', data: this.data.join('\n'), id: this.id };
      this.reset();
      return event;
    }
    if (line.startsWith(':')) return null; // a comment, e.g. a keep-alive
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id') this.id = value;
    return null;
  }
}
