// Compiles the service (src/ → dist/, one JavaScript module per TypeScript module, same folders) with esbuild, only
// when a source is newer than the last build: `npm start` then runs plain JavaScript, without a compiler and its
// source maps in the service's memory. `--force` rebuilds anyway. Type checking stays with `npm run typecheck`.
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(import.meta.dirname, '..');
const srcDir = path.join(root, 'src');
const outDir = path.join(root, 'dist');
const stamp = path.join(outDir, '.built');

/** Every module under `dir`, and the newest modification time among them and the folders holding them. */
function sources(dir, found = { files: [], newest: fs.statSync(dir).mtimeMs }) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      // A folder's own time changes when a file in it is removed or renamed.
      found.newest = Math.max(found.newest, fs.statSync(full).mtimeMs);
      sources(full, found);
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      found.files.push(full);
      found.newest = Math.max(found.newest, fs.statSync(full).mtimeMs);
    }
  }
  return found;
}

const { files, newest } = sources(srcDir);
const inputs = Math.max(newest, fs.statSync(path.join(root, 'package.json')).mtimeMs);
const builtAt = fs.existsSync(stamp) ? fs.statSync(stamp).mtimeMs : 0;
if (builtAt >= inputs && !process.argv.includes('--force')) process.exit(0);

const started = performance.now();
fs.rmSync(outDir, { recursive: true, force: true });
await build({
  entryPoints: files,
  outdir: outDir,
  outbase: srcDir,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
fs.writeFileSync(stamp, `${new Date().toISOString()}\n`);
console.log(`service compiled in ${Math.round(performance.now() - started)} ms (src/ → dist/)`);
