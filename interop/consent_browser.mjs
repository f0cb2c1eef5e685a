// Drives the broker's consent page in headless Chromium.
//
//   node consent_browser.mjs <approve|deny|twice> <authorization-url> <callback-url> <shots-dir>
//
// Opens the authorization URL, which the broker answers with its consent page, reads what the
// page shows and how its form is built, saves a screenshot, and answers it:
//   approve  clicks Allow and follows the redirects (identity provider, broker callback) to the
//            client's callback;
//   deny     clicks Deny and follows the redirect to the client's callback;
//   twice    opens the same consent page again in a second tab, approves on the first tab, then
//            submits the second tab's copy too.
// Prints one JSON object for the Rust test to assert on.
//
// Chromium is Debian's (`apt-get install -y chromium`), at $CHROMIUM or /usr/bin/chromium.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const [mode, authorizationUrl, callbackUrl, shots] = process.argv.slice(2);
if (!['approve', 'deny', 'twice'].includes(mode) || !authorizationUrl || !callbackUrl || !shots) {
  console.error('usage: node consent_browser.mjs <approve|deny|twice> <url> <callback> <dir>');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  console.error(`Chromium not found at ${executablePath}: apt-get install -y chromium`);
  process.exit(2);
}
const TIMEOUT_MS = 60_000;

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

const console_ = [];
const navigations = [];

async function newPage(label) {
  const page = await browser.newPage();
  await page.setViewport({ width: 960, height: 720 });
  page.setDefaultTimeout(TIMEOUT_MS);
  page.on('console', (message) => console_.push(`${label} ${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => console_.push(`${label} pageerror: ${error.message}`));
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations.push(`${label} ${frame.url()}`);
  });
  return page;
}

// What a person sees on the consent page, and the form the buttons submit.
async function describe(page, response) {
  const shown = await page.evaluate(() => {
    const visible = (element) => {
      const box = element.getBoundingClientRect();
      const style = getComputedStyle(element);
      return box.width > 0 && box.height > 0 && style.visibility !== 'hidden';
    };
    return {
      title: document.title,
      text: document.body.innerText,
      forms: Array.from(document.forms).map((form) => ({
        method: form.method,
        action: form.getAttribute('action'),
        fields: Array.from(form.elements).map((element) => ({
          tag: element.tagName.toLowerCase(),
          type: element.type,
          name: element.name,
          value: element.value,
          label: element.textContent.trim(),
          visible: visible(element),
        })),
      })),
      scripts: document.scripts.length,
      horizontalOverflow: document.documentElement.scrollWidth > window.innerWidth,
    };
  });
  return {
    url: page.url(),
    status: response ? response.status() : null,
    csp: response ? (response.headers()['content-security-policy'] ?? null) : null,
    ...shown,
  };
}

async function open(page, url) {
  const response = await page.goto(url, { waitUntil: 'load' });
  return describe(page, response);
}

// Clicks the form's button for `decision` and waits for the navigation it starts to settle
// (through every redirect); describes the way and where the browser ends.
async function answer(page, decision) {
  await page.bringToFront();
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.click(`form button[name="decision"][value="${decision}"]`),
  ]);
  // The requests the navigation went through before its final one (each answered 30x).
  const redirects = response
    ? response
        .request()
        .redirectChain()
        .map((request) => `${request.method()} ${request.url()}`)
    : [];
  return {
    url: page.url(),
    status: response ? response.status() : null,
    redirects,
    text: await page.evaluate(() => document.body.innerText),
  };
}

const shot = (page, name) => page.screenshot({ path: join(shots, name), fullPage: true });

const report = { mode, consent: [], final: null, late: null, error: null };
try {
  const first = await newPage('first');
  report.consent.push(await open(first, authorizationUrl));
  if (mode === 'twice') {
    const second = await newPage('second');
    report.consent.push(await open(second, first.url()));
    await shot(first, 'consent-twice-first.png');
    await shot(second, 'consent-twice-second.png');
    report.final = await answer(first, 'approve');
    report.late = await answer(second, 'approve');
  } else {
    await shot(first, `consent-${mode}.png`);
    report.final = await answer(first, mode);
  }
  if (!report.final.url.startsWith(`${callbackUrl}?`)) {
    report.error = `ended at ${report.final.url}, not at the client's callback`;
  }
} catch (error) {
  report.error = String(error?.stack ?? error);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify({ ...report, navigations, console: console_ }));
process.exit(0);
