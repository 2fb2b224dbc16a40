// report.html of a run folder: the run's files read back (runHistory) and drawn by the report page.
// Called by the reporter at the end of a run, by `vitpeft report` and by `vitpeft merge`.

import * as path from 'path';
import { writeFileAtomic } from '../../../common/atomicWrite';
import { readRunHistory } from './runHistory';
import { reportHtml } from './reportHtml';

export const REPORT_FILE = 'report.html';

/** Writes <runDir>/report.html and returns its path; errors name the run file that is missing or damaged. */
export function writeReport(runDir: string): string {
  const history = readRunHistory(runDir);
  const file = path.join(runDir, REPORT_FILE);
  writeFileAtomic(file, reportHtml({ history: { ...history, finished: true } }));
  return file;
}
