'use strict';
// Debian's headless Chromium (never a downloaded browser) through playwright-core, for the tests that need a real
// browser: the dashboard, and what browsers enforce about origins (CORS, WebSocket Origin).

const fs = require('node:fs');
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');
const { withTimeout } = require('./util');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Launches Chromium; asserts it is installed first, naming how to install it. */
async function launchChromium() {
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install chromium (bash scripts/deps.sh test)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 30000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Closes the browser, killing it if it does not close within 10 s. */
async function closeChromium(browser) {
  if (browser)
    await withTimeout(browser.close(), 10000, 'closing Chromium').catch(() => browser.process()?.kill('SIGKILL'));
}

module.exports = { launchChromium, closeChromium };
