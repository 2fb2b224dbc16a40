// A small JSON parser for untrusted headers: JSON.parse silently keeps the last of two equal keys,
// which would let a file describe one tensor twice. This parser rejects duplicate keys and
// bounds nesting depth, and otherwise returns what JSON.parse would.

export class StrictJsonError extends Error {}

const MAX_DEPTH = 64;

export function parseStrictJson(text: string): unknown {
  let position = 0;

  const fail = (what: string): never => {
    throw new StrictJsonError(`${what} at character ${position}`);
  };
  const skipWhitespace = (): void => {
    while (position < text.length) {
      const c = text.charCodeAt(position);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) position++;
      else break;
    }
  };
  const parseString = (): string => {
    const start = position;
    if (text[position] !== '"') fail('expected a string');
    position++;
    while (position < text.length) {
      const c = text[position];
      if (c === '"') {
        position++;
        try {
          return JSON.parse(text.slice(start, position)) as string;
        } catch {
          return fail('invalid escape in string');
        }
      }
      if (c === '\\') position += 2;
      else if (text.charCodeAt(position) < 0x20) fail('control character in string');
      else position++;
    }
    return fail('unterminated string');
  };
  const parseNumber = (): number => {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(position, position + 64));
    if (!match) return fail('expected a value');
    position += match[0].length;
    return Number(match[0]);
  };
  const parseLiteral = (literal: string, value: unknown): unknown => {
    if (text.startsWith(literal, position)) {
      position += literal.length;
      return value;
    }
    return fail('expected a value');
  };
  const parseValue = (depth: number): unknown => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    skipWhitespace();
    const c = text[position];
    if (c === '{') {
      position++;
      const object: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      skipWhitespace();
      if (text[position] === '}') {
        position++;
        return { ...object };
      }
      for (;;) {
        skipWhitespace();
        const key = parseString();
        if (Object.prototype.hasOwnProperty.call(object, key)) fail(`duplicate key ${JSON.stringify(key)}`);
        skipWhitespace();
        if (text[position] !== ':') fail('expected ":"');
        position++;
        object[key] = parseValue(depth + 1);
        skipWhitespace();
        if (text[position] === ',') {
          position++;
          continue;
        }
        if (text[position] === '}') {
          position++;
          return { ...object };
        }
        fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      position++;
      const array: unknown[] = [];
      skipWhitespace();
      if (text[position] === ']') {
        position++;
        return array;
      }
      for (;;) {
        array.push(parseValue(depth + 1));
        skipWhitespace();
        if (text[position] === ',') {
          position++;
          continue;
        }
        if (text[position] === ']') {
          position++;
          return array;
        }
        fail('expected "," or "]"');
      }
    }
    if (c === '"') return parseString();
    if (c === 't') return parseLiteral('true', true);
    if (c === 'f') return parseLiteral('false', false);
    if (c === 'n') return parseLiteral('null', null);
    return parseNumber();
  };

  const value = parseValue(0);
  skipWhitespace();
  if (position !== text.length) fail('unexpected trailing characters');
  return value;
}
