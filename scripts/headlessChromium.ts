// Debian's Chromium, headless, driven by playwright-core: for the report's browser tests and the
// README's screenshot. Started with a fresh profile and without the background connections that a
// machine with no outside network refuses.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BrowserContext, chromium } from 'playwright-core';

export const CHROMIUM = process.env.VITPEFT_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface HeadlessChromium {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(options: { viewport?: { width: number; height: number }; offline?: boolean } = {}): Promise<HeadlessChromium> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM}: no Chromium there (apt-get install -y chromium, as .ci/run does; or set VITPEFT_CHROMIUM)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vitpeft-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: options.viewport ?? { width: 1280, height: 900 },
    offline: options.offline ?? false,
  });
  return {
    context,
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
