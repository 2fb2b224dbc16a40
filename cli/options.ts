// Parsers for option values shared by the commands; each names the option it failed on.

import { UsageError } from './errors';

export function parseInteger(option: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const number = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(number) || number < min || number > max) {
      throw new UsageError(`${option}: expected an integer in [${min}, ${max}], got '${value}'`);
    }
    return number;
  };
}

export function parseNumberList(option: string, length: number) {
  return (value: string): number[] => {
    const numbers = value.split(',').map((part) => Number(part.trim()));
    if (numbers.length !== length || numbers.some((n) => !Number.isFinite(n))) {
      throw new UsageError(`${option}: expected ${length} comma-separated numbers, got '${value}'`);
    }
    return numbers;
  };
}
