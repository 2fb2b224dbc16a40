// io-ts building blocks for configuration: records that reject unknown keys (io-ts's exact and
// strict drop them silently, which hides typos), refinements that say what they expect, a
// discriminated union that reports against its tag, and a reporter that names the field path.

import { isLeft } from 'fp-ts/Either';
import * as t from 'io-ts';

/** A record with required and optional keys; any other key is an error naming the allowed ones. */
export function closed<R extends t.Props, O extends t.Props = Record<never, never>>(name: string, required: R, optional?: O) {
  type A = t.TypeOf<t.TypeC<R>> & t.TypeOf<t.PartialC<O>>;
  const optionalProps = optional ?? ({} as O);
  const allowed = [...Object.keys(required), ...Object.keys(optionalProps)];
  const field = (codec: t.Mixed, key: string, input: Record<string, unknown>, context: t.Context) =>
    codec.validate(input[key], [...context, { key, type: codec, actual: input[key] }]);
  return new t.Type<A, A, unknown>(
    name,
    (input): input is A =>
      typeof input === 'object' &&
      input !== null &&
      Object.keys(input).every((key) => allowed.includes(key)) &&
      Object.entries(required).every(([key, codec]) => codec.is((input as Record<string, unknown>)[key])) &&
      Object.entries(optionalProps).every(([key, codec]) => (input as Record<string, unknown>)[key] === undefined || codec.is((input as Record<string, unknown>)[key])),
    (input, context) => {
      if (typeof input !== 'object' || input === null || Array.isArray(input)) {
        return t.failure(input, context, `expected an object with keys ${allowed.join(', ')}`);
      }
      const record = input as Record<string, unknown>;
      const errors: t.ValidationError[] = [];
      const output: Record<string, unknown> = {};
      const take = (codec: t.Mixed, key: string) => {
        const result = field(codec, key, record, context);
        if (isLeft(result)) errors.push(...result.left);
        else output[key] = result.right;
      };
      for (const [key, codec] of Object.entries(required)) take(codec, key);
      for (const [key, codec] of Object.entries(optionalProps)) if (record[key] !== undefined) take(codec, key);
      for (const [key, value] of Object.entries(record)) {
        if (!allowed.includes(key)) {
          errors.push({ value, context: [...context, { key, type: t.never, actual: value }], message: `unknown key (allowed here: ${allowed.join(', ')})` });
        }
      }
      return errors.length > 0 ? t.failures(errors) : t.success(output as A);
    },
    t.identity,
  );
}

/** base, further restricted by a predicate; failures say `expected <description>`. */
export function refined<A, O>(base: t.Type<A, O, unknown>, accept: (value: A) => boolean, description: string): t.Type<A, O, unknown> {
  return new t.Type<A, O, unknown>(
    description,
    (input): input is A => base.is(input) && accept(input),
    (input, context) => {
      const result = base.validate(input, context);
      if (isLeft(result) || !accept(result.right)) return t.failure(input, context, `expected ${description}`);
      return result;
    },
    base.encode,
  );
}

export const PositiveInt = refined(t.number, (n) => Number.isInteger(n) && n > 0, 'a positive integer');
export const NonNegativeInt = refined(t.number, (n) => Number.isInteger(n) && n >= 0, 'a non-negative integer');
export const Int = refined(t.number, (n) => Number.isSafeInteger(n), 'an integer');
export const PositiveNumber = refined(t.number, (n) => Number.isFinite(n) && n > 0, 'a positive number');
export const NonNegativeNumber = refined(t.number, (n) => Number.isFinite(n) && n >= 0, 'a non-negative number');
export const UnitInterval = refined(t.number, (n) => n >= 0 && n < 1, 'a number in [0, 1)');
export const NonEmptyString = refined(t.string, (s) => s.trim().length > 0, 'a non-empty string');
export const Rgb = refined(t.array(t.number), (a) => a.length === 3 && a.every(Number.isFinite), 'three numbers [r, g, b]');

export function oneOf<T extends string>(values: readonly T[], description?: string): t.Type<T, T, unknown> {
  return refined(t.string, (s) => (values as readonly string[]).includes(s), description ?? `one of ${values.map((v) => `'${v}'`).join(', ')}`) as unknown as t.Type<T, T, unknown>;
}

/** A non-empty array; errors inside items keep their own paths. */
export function nonEmptyArray<A, O>(item: t.Type<A, O, unknown>, name: string): t.Type<A[], O[], unknown> {
  const array = t.array(item, name);
  return new t.Type<A[], O[], unknown>(
    name,
    (input): input is A[] => array.is(input) && input.length > 0,
    (input, context) => {
      const result = array.validate(input, context);
      if (isLeft(result)) return result;
      return result.right.length > 0 ? result : t.failure(input, context, `expected a non-empty list of ${item.name}`);
    },
    array.encode,
  );
}

/**
 * A switch that may also carry settings: true or false, or the settings record (on, with those
 * settings); anything else is one error. Errors inside the record keep their own paths.
 */
export function flagOr<A>(settings: t.Type<A, A, unknown>, description: string): t.Type<boolean | A, boolean | A, unknown> {
  return new t.Type<boolean | A, boolean | A, unknown>(
    `true, false or ${description}`,
    (input): input is boolean | A => typeof input === 'boolean' || settings.is(input),
    (input, context) => {
      if (typeof input === 'boolean') return t.success(input);
      if (typeof input === 'object' && input !== null && !Array.isArray(input)) return settings.validate(input, context);
      return t.failure(input, context, `expected true, false or ${description}`);
    },
    t.identity,
  );
}

/** A union told apart by one string field; an unknown tag is one error at that field. */
export function taggedUnion<K extends string, C extends Record<string, t.Mixed>>(tag: K, members: C, name: string) {
  type A = t.TypeOf<C[keyof C]>;
  const tags = Object.keys(members);
  return new t.Type<A, unknown, unknown>(
    name,
    (input): input is A => tags.some((key) => members[key].is(input)),
    (input, context) => {
      if (typeof input !== 'object' || input === null || Array.isArray(input)) return t.failure(input, context, `expected an object with '${tag}'`);
      const value = (input as Record<string, unknown>)[tag];
      const member = typeof value === 'string' && Object.prototype.hasOwnProperty.call(members, value) ? members[value] : undefined;
      if (!member) {
        return t.failure(value, [...context, { key: tag, type: t.string, actual: value }], `expected one of ${tags.map((v) => `'${v}'`).join(', ')}`);
      }
      return member.validate(input, context) as t.Validation<A>;
    },
    t.identity,
  );
}

const TRANSPARENT = new Set(['IntersectionType', 'UnionType']);

/** One line per error: `path.to.field: expected ..., got ...` (a missing key says so). */
export function formatErrors(errors: t.Errors): string[] {
  const lines = errors.map((error) => {
    let path = '';
    error.context.forEach((entry, index) => {
      if (index === 0 || entry.key === '') return;
      const parent = error.context[index - 1].type as unknown as { _tag?: string };
      if (parent._tag && TRANSPARENT.has(parent._tag)) return;
      // Config records have no numeric keys, so a numeric key is an array index.
      if (/^\d+$/.test(entry.key)) path += `[${entry.key}]`;
      else path += path ? `.${entry.key}` : entry.key;
    });
    const last = error.context[error.context.length - 1];
    const expected = error.message ?? `expected ${last?.type.name ?? 'a valid value'}`;
    const where = path || '(top level)';
    if (error.value === undefined && !error.message?.startsWith('unknown key')) return `${where}: missing (${expected})`;
    const shown = JSON.stringify(error.value);
    return `${where}: ${expected}, got ${shown === undefined ? String(error.value) : shown.length > 60 ? `${shown.slice(0, 57)}...` : shown}`;
  });
  return [...new Set(lines)];
}
