#!/usr/bin/env node
// The `aviary` bin. Runs the compiled CLI when `npm run build` has produced it; otherwise runs the TypeScript source
// through tsx with the `aviary-source` condition, so a fresh clone works without a build.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(dist)) {
  const { run } = await import(dist.href);
  process.exitCode = await run(process.argv);
} else {
  const source = fileURLToPath(new URL('./main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--conditions=aviary-source', '--import', import.meta.resolve('tsx'), source, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 128 + 15 : 1);
  });
}
