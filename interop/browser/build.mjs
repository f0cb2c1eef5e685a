// Bundles client.mjs (and the MCP TypeScript SDK it imports) for the browser.
//
//   node browser/build.mjs <outfile>
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const [outfile] = process.argv.slice(2);
if (!outfile) throw new Error('usage: node browser/build.mjs <outfile>');
await build({
  entryPoints: [fileURLToPath(new URL('client.mjs', import.meta.url))],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  outfile,
  logLevel: 'warning',
});
