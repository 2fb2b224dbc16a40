#!/usr/bin/env node
// The vitpeft command line; the TypeScript sources compile to dist/ on `npm ci` (prepare).
require('../dist/cli/main').main(process.argv);
