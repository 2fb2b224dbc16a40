// A CSV file written row by row as results arrive: each row is formatted by csv-stringify and
// written with one write call, so a crash or kill leaves only whole rows. Reopening an existing
// file (a resumed run) appends after checking that its header matches.

import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import * as fs from 'fs';
import * as path from 'path';

export type CsvValue = string | number | boolean | null | undefined;

export class CsvLog<Row extends Record<string, CsvValue>> {
  private readonly fd: number;

  constructor(
    readonly file: string,
    readonly columns: readonly (keyof Row & string)[],
  ) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const header = stringify([columns as string[]]);
    if (fs.existsSync(file) && fs.statSync(file).size > 0) {
      const existing = fs.readFileSync(file, 'utf8');
      if (!existing.startsWith(header)) throw new Error(`${file}: existing header does not match the columns ${columns.join(',')}; refusing to append`);
      // A torn last line cannot happen (one write per row), but a file cut by a full disk could end mid-row.
      if (!existing.endsWith('\n')) throw new Error(`${file}: the last row is incomplete; remove it before resuming`);
      this.fd = fs.openSync(file, 'a');
    } else {
      this.fd = fs.openSync(file, 'w');
      fs.writeSync(this.fd, header);
    }
  }

  append(row: Row): void {
    fs.writeSync(this.fd, stringify([this.columns.map((column) => format(row[column]))]));
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

function format(value: CsvValue): string | number | boolean | null {
  if (value === undefined) return null;
  if (typeof value === 'number' && !Number.isInteger(value)) return Number(value.toPrecision(7));
  return value;
}

/** Reads a CSV written by CsvLog (or results.csv) back into records of strings. */
export function readCsv(file: string): Record<string, string>[] {
  return parse(fs.readFileSync(file, 'utf8'), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
}
