// `vitpeft report DIR`: writes DIR/report.html, the run's results, curves and settings in one
// page that opens from disk without a network (for a run folder written by an older vitpeft,
// or after editing its CSVs).

import { Command } from 'commander';
import * as path from 'path';
import { LocatedError } from '../../common/errors';
import { writeReport } from '../../stages/reporter/report/writeReport';
import { UsageError } from '../errors';

export function reportCommand(): Command {
  return new Command('report')
    .description('write out/<run>/report.html (table and interactive charts, opens from disk) for an existing run folder')
    .argument('<dir>', 'a run folder (out/<run>)')
    .action((dir: string) => {
      let file: string;
      try {
        file = writeReport(path.resolve(dir));
      } catch (error) {
        if (error instanceof LocatedError) throw new UsageError(error.message);
        throw error;
      }
      process.stdout.write(`${path.relative(process.cwd(), file) || file}\n`);
    });
}
