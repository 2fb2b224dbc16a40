// Keeps a live server up until SIGINT or SIGTERM (`vitpeft serve`, `vitpeft run --serve --stay`).

import type { LiveServer } from './liveServer';

export function serveUntilSignal(server: LiveServer): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void server.close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
