// Packs @aviary/sdk into the tarball an application installs (`npm install /path/to/aviary-sdk-0.1.0.tgz`), built
// afresh from the sources: the TypeScript compiled (JavaScript + .d.ts, no source maps: the sources are not shipped)
// into a staging directory, the browser bundle and its source map (scripts/bundle.mjs), README.md, and a package.json
// whose exports name dist files only. (The repo's own package.json also has an `aviary-source` condition pointing at
// the .ts sources, for the repo's tests and tools; an installed package has no sources, so that condition goes.)
// Usage: node sdk/scripts/pack.mjs [--out <dir>] [--json]    (default out: <repo>/dist)
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const sdk = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const out = resolve(outIndex >= 0 && args[outIndex + 1] ? args[outIndex + 1] : join(sdk, '..', 'dist'));
const json = args.includes('--json');

const stage = mkdtempSync(join(tmpdir(), 'aviary-sdk-pack-'));
try {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', join(sdk, 'tsconfig.build.json'), '--outDir', join(stage, 'dist'), '--sourceMap', 'false'], {
    stdio: 'inherit',
  });
  execFileSync(process.execPath, [join(sdk, 'scripts', 'bundle.mjs')], { stdio: json ? 'ignore' : 'inherit' });
  for (const file of ['aviary.browser.js', 'aviary.browser.js.map']) copyFileSync(join(sdk, 'dist', file), join(stage, 'dist', file));
  copyFileSync(join(sdk, 'README.md'), join(stage, 'README.md'));

  const pkg = JSON.parse(readFileSync(join(sdk, 'package.json'), 'utf8'));
  delete pkg.scripts;
  delete pkg.devDependencies;
  for (const entry of Object.values(pkg.exports)) if (typeof entry === 'object') delete entry['aviary-source'];
  pkg.browser = Object.fromEntries(Object.entries(pkg.browser ?? {}).filter(([from]) => from.startsWith('./dist/')));
  pkg.files = ['dist'];
  writeFileSync(join(stage, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');

  mkdirSync(out, { recursive: true });
  const [packed] = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  const report = {
    tarball: join(out, packed.filename),
    size: packed.size,
    unpackedSize: packed.unpackedSize,
    files: packed.files.map((f) => f.path).sort(),
  };
  if (json) console.log(JSON.stringify(report));
  else
    console.log(
      `${report.tarball}: ${report.files.length} files, ${(report.size / 1024).toFixed(1)} KB (install it with: npm install ${report.tarball})`,
    );
} finally {
  rmSync(stage, { recursive: true, force: true });
}
