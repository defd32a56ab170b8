// Builds the browser bundle of @aviary/sdk (dist/aviary.browser.js, ESM, minified) and reports its gzipped size.
// The `ws` package is never bundled: browsers use their global WebSocket (the client imports `ws` lazily, on Node
// only). esbuild bundles and minifies; oxc's minifier (rolldown's, which vite already brings) then minifies the
// result again, which gzips about 2.5% smaller (its names and statement order compress better); the source map is
// chained through both steps. Usage: node scripts/bundle.mjs [--json] [--sources]
import { build } from 'esbuild';
import { minify } from 'rolldown/experimental';
import remapping from '@jridgewell/remapping';
import { gzipSync } from 'node:zlib';
import { writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const sdk = join(here, '..');
const outfile = join(sdk, 'dist', 'aviary.browser.js');
mkdirSync(dirname(outfile), { recursive: true });

const result = await build({
  entryPoints: [join(sdk, 'index.ts')],
  outfile,
  write: false,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  // Private members are spelled `_name` (TypeScript `private`, never public API or wire fields), so their names can
  // be shortened like local variables; nothing else in the SDK starts a property name with one underscore.
  mangleProps: /^_[a-zA-Z]/,
  sourcemap: 'external',
  external: ['ws'],
  conditions: ['aviary-source'],
  // Fields are assigned in constructors, not defined by declarations (TypeScript's older class-field emit): the SDK
  // never relies on [[Define]] semantics, and field declarations without initializers then cost nothing.
  tsconfigRaw: { compilerOptions: { useDefineForClassFields: false } },
  metafile: true,
  logLevel: 'warning',
});

const esbuilt = Object.fromEntries(result.outputFiles.map((f) => [f.path.endsWith('.map') ? 'map' : 'js', f.text]));
const oxc = await minify('aviary.browser.js', esbuilt.js, {
  module: true,
  compress: { target: 'es2022' },
  mangle: { toplevel: true },
  sourcemap: true,
});
if (oxc.errors.length > 0) throw new Error(`oxc minify: ${oxc.errors.map((e) => e.message).join('; ')}`);
const map = remapping([JSON.stringify(oxc.map), esbuilt.map], () => null);
// Written whole and then renamed into place: tests that build and import the bundle run in parallel.
const writeAtomically = (path, text) => {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
};
const code = Buffer.from(`${oxc.code.trimEnd()}\n//# sourceMappingURL=aviary.browser.js.map\n`);
writeAtomically(`${outfile}.map`, JSON.stringify(map));
writeAtomically(outfile, code);
const gzipped = gzipSync(code, { level: 9 }).length;
const inputs = Object.keys(result.metafile.inputs).filter((p) => p.includes('node_modules'));
// Every bundled source file with its minified bytes, largest first, so a size regression names its cause (and a
// test can check that the validator never comes back into the browser build).
const output = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined);
const sources = Object.entries(output?.inputs ?? {})
  .map(([path, v]) => ({ path, bytes: v.bytesInOutput }))
  .sort((a, b) => b.bytes - a.bytes);
const report = {
  file: 'sdk/dist/aviary.browser.js',
  bytes: code.length,
  gzipBytes: gzipped,
  gzipKB: +(gzipped / 1024).toFixed(2),
  thirdParty: inputs,
  sources,
};
writeAtomically(join(sdk, 'dist', 'aviary.browser.size.json'), JSON.stringify(report, null, 2) + '\n');
if (process.argv.includes('--json')) console.log(JSON.stringify(report));
else {
  console.log(
    `browser bundle: ${code.length} bytes, ${gzipped} bytes gzipped (${report.gzipKB} KB)${inputs.length ? `; bundled packages: ${inputs.join(', ')}` : ''}`,
  );
  if (process.argv.includes('--sources')) for (const s of sources) console.log(`  ${String(s.bytes).padStart(6)}  ${s.path}`);
}
