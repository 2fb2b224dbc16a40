// The README's picture of the report: report.html of a run folder (rewritten first), opened from
// disk in headless Chromium with the network cut, its top part saved as a small PNG.
//   node dist/scripts/reportScreenshot.js out/<run> docs/report.png

import 'reflect-metadata';
import * as path from 'path';
import sharp from 'sharp';
import { writeReport } from '../stages/reporter/report/writeReport';
import { launchChromium } from './headlessChromium';

const WIDTH = 1280;
const HEIGHT = 1240;
/** The committed picture's width; palette PNG keeps it under 200 KB. */
const SAVED_WIDTH = 1000;

export async function screenshotReport(runDir: string, target: string): Promise<number> {
  const report = writeReport(path.resolve(runDir));
  const chromium = await launchChromium({ viewport: { width: WIDTH, height: HEIGHT }, offline: true });
  try {
    const page = await chromium.context.newPage();
    await page.goto(`file://${report}`);
    await page.waitForSelector('body[data-rendered]', { timeout: 30_000 });
    const png = await page.screenshot({ clip: { x: 0, y: 0, width: WIDTH, height: HEIGHT } });
    const info = await sharp(png).resize({ width: SAVED_WIDTH }).png({ palette: true, colours: 256, dither: 0.5, compressionLevel: 9 }).toFile(target);
    return info.size;
  } finally {
    await chromium.close();
  }
}

if (require.main === module) {
  const [runDir, target] = process.argv.slice(2);
  if (!runDir || !target) {
    process.stderr.write('usage: node dist/scripts/reportScreenshot.js out/<run> docs/report.png\n');
    process.exit(2);
  }
  screenshotReport(runDir, target).then(
    (bytes) => process.stdout.write(`${target}: ${bytes} bytes\n`),
    (error: Error) => {
      process.stderr.write(`reportScreenshot: ${error.message}\n`);
      process.exit(1);
    },
  );
}
