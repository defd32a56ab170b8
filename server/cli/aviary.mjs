#!/usr/bin/env node
// The `aviary` bin. In a development checkout (tsx installed) it runs the TypeScript source with the
// `aviary-source` condition, so it never runs a stale build; in an install without dev dependencies it runs the
// compiled CLI that `npm run build` produced.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function resolveTsx() {
  try {
    return import.meta.resolve('tsx');
  } catch {
    return null;
  }
}

const tsx = resolveTsx();
const dist = new URL('../dist/cli/main.js', import.meta.url);
if (tsx === null && existsSync(dist)) {
  const { run } = await import(dist.href);
  process.exitCode = await run(process.argv);
} else if (tsx === null) {
  process.stderr.write('aviary: neither tsx (dev dependencies) nor a build (npm run build) is available\n');
  process.exitCode = 1;
} else {
  const source = fileURLToPath(new URL('./main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--conditions=aviary-source', '--import', tsx, source, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal === 'SIGINT' ? 130 : 143);
  });
}
