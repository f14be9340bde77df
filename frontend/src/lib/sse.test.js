import { describe, expect, it } from 'vitest';
import { SseParser } from './sse.js';

describe('SseParser', () => {
  it('parses data events terminated by a blank line', () => {
    const parser = new SseParser();
    expect(parser.push('data: {"a":1}\n\ndata: two\n\n')).toEqual([
      { event: 'message', data: '{"a":1}', id: undefined },
      { event: 'message', data: 'two', id: undefined },
    ]);
  });

  it('keeps an event split across chunks until it is complete', () => {
    const parser = new SseParser();
    expect(parser.push('da')).toEqual([]);
    expect(parser.push('ta: hel')).toEqual([]);
    expect(parser.push('lo\n')).toEqual([]);
    expect(parser.push('\n')).toEqual([{ event: 'message', data: 'hello', id: undefined }]);
  });

  it('joins multi-line data, reads event and id, ignores comments', () => {
    const parser = new SseParser();
    const events = parser.push(': keep-alive\nevent: status\nid: 7\ndata: one\ndata: two\n\n');
    expect(events).toEqual([{ event: 'status', data: 'one\ntwo', id: '7' }]);
  });

  it('accepts CRLF and CR line endings, including a CRLF split between chunks', () => {
    const parser = new SseParser();
    expect(parser.push('data: a\r')).toEqual([]);
    // The final CR could be the first half of a CRLF, so 'b' waits for the next character.
    expect(parser.push('\n\r\ndata: b\r\r')).toEqual([{ event: 'message', data: 'a', id: undefined }]);
    expect(parser.push('data: c\n\n')).toEqual([
      { event: 'message', data: 'b', id: undefined },
      { event: 'message', data: 'c', id: undefined },
    ]);
  });

  it('drops an event without data and keeps only one leading space of a value', () => {
    const parser = new SseParser();
    expect(parser.push('event: ping\n\ndata:  spaced\n\n')).toEqual([{ event: 'message', data: ' spaced', id: undefined }]);
  });
});
