// Drives the browser-based MCP client (browser/client.mjs) in headless Chromium.
//
//   node browser_client.mjs <page-url> <screenshot.png>
//
// Opens the page (served by the Rust test from its own loopback origin), waits until the page
// reports a result or an error — across the full-page redirects of two logins — and saves a
// screenshot of its final state. Prints one JSON object for the Rust test to assert on.
//
// Chromium is Debian's (`apt-get install -y chromium`), at $CHROMIUM or /usr/bin/chromium.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const [pageUrl, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  console.error(`Chromium not found at ${executablePath}: apt-get install -y chromium`);
  process.exit(2);
}
const TIMEOUT_MS = 90_000;

const profile = mkdtempSync(join(tmpdir(), 'mcpauth-chromium-'));
const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${profile}`,
  ],
});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const console_ = [];
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 800 });
  page.on('console', (message) => console_.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => console_.push(`pageerror: ${error.message}`));
  const navigations = [];
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations.push(frame.url());
  });
  await page.goto(pageUrl);

  // The page navigates away and back (twice) before it is done: poll, and ride out the
  // moments when its context is being replaced.
  const deadline = Date.now() + TIMEOUT_MS;
  let outcome = null;
  while (outcome === null && Date.now() < deadline) {
    try {
      outcome = await page.evaluate(() =>
        window.__mcpResult || window.__mcpError
          ? { result: window.__mcpResult ?? null, error: window.__mcpError ?? null }
          : null,
      );
    } catch {
      // Execution context destroyed by a navigation: try again on the next page.
    }
    if (outcome === null) await sleep(100);
  }
  await page.screenshot({ path: screenshot, fullPage: true });
  if (outcome === null) {
    outcome = { result: null, error: `no result after ${TIMEOUT_MS} ms at ${page.url()}` };
  }
  console.log(JSON.stringify({ ...outcome, navigations, console: console_, screenshot }));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(0);
