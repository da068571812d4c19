/**
 * The browser bundle of `@topgun/client` + `@topgun/react` (+ `@topgun/core`), React excluded,
 * minified and gzipped, as an app's bundler would ship it; fails above the ceiling. Run by
 * `npm run check` (after the packages are built).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build, type Rolldown } from 'vite';

/**
 * The most gzipped bytes allowed, lowered as the bundle shrinks; the goal is 30 KiB (issue
 * 13), which needs the protocol checked without zod on the client.
 */
const CEILING_BYTES = 56 * 1024;

const here = dirname(fileURLToPath(import.meta.url));
const result = await build({
  root: join(here, '..'),
  logLevel: 'silent',
  configFile: false,
  build: {
    write: false,
    minify: true,
    lib: { entry: join(here, 'bundleEntry.ts'), formats: ['es'], fileName: 'topgun' },
    rolldownOptions: { external: ['react', 'react-dom', 'react/jsx-runtime', 'ws'] },
  },
});
const outputs = (Array.isArray(result) ? result : [result]).flatMap(
  (each) => (each as Rolldown.RolldownOutput).output,
);
let minified = 0;
let gzipped = 0;
const byPackage = new Map<string, number>();
for (const output of outputs) {
  if (output.type !== 'chunk') continue;
  minified += output.code.length;
  gzipped += gzipSync(output.code).length;
  for (const [id, module] of Object.entries(output.modules)) {
    const name =
      /node_modules\/\.pnpm\/(@?[^@/]+)/.exec(id)?.[1] ??
      /packages\/([^/]+)\//.exec(id)?.[1] ??
      'other';
    byPackage.set(name, (byPackage.get(name) ?? 0) + module.renderedLength);
  }
}
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
console.log(
  `client + react + core, React excluded: ${kib(minified)} minified, ${kib(gzipped)} gzipped (ceiling ${kib(CEILING_BYTES)})`,
);
console.log(
  `before minifying, by package: ${[...byPackage]
    .sort((a, b) => b[1] - a[1])
    .map(([name, bytes]) => `${name} ${kib(bytes)}`)
    .join(', ')}`,
);
if (gzipped > CEILING_BYTES) {
  console.error(`the bundle grew past its ceiling: ${kib(gzipped)} > ${kib(CEILING_BYTES)}`);
  process.exit(1);
}
