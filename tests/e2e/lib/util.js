'use strict';
// Small helpers shared by the e2e tests: bounded waiting and sleeping.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls fn (sync or async) until it returns a truthy value, which is returned. Rejects after timeout ms with
 * message (plus the last thrown error, if any). Every wait in the suite is bounded by this or by an explicit timer.
 */
async function waitFor(fn, { timeout = 5000, interval = 20, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v)
        return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      const extra = lastErr ? ` (last error: ${lastErr.message})` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${message}${extra}`);
    }
    await sleep(interval);
  }
}

/** Rejects with an Error naming what after ms unless promise settles first. */
function withTimeout(promise, ms, what = 'operation') {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** A per-process unique suffix for channel names and event ids, so tests never see each other's events. */
let counter = 0;
function uniq(prefix = 't') {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** Asserts a sequence is exactly 1..n style consecutive without gaps or duplicates; returns a description or null. */
function describeSeqProblem(got, want) {
  if (got.length === want.length && got.every((v, i) => v === want[i]))
    return null;
  const gs = new Set(got);
  const missing = want.filter((v) => !gs.has(v));
  const seen = new Set();
  const dups = got.filter((v) => (seen.has(v) ? true : (seen.add(v), false)));
  let firstDiff = -1;
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] !== want[i]) {
      firstDiff = i;
      break;
    }
  }
  return `got ${got.length} want ${want.length}; missing ${missing.length} (first: ${missing.slice(0, 5)}); ` +
    `duplicates ${dups.length} (first: ${dups.slice(0, 5)}); first difference at index ${firstDiff}: ` +
    `got ${got[firstDiff]} want ${want[firstDiff]}`;
}

module.exports = { sleep, waitFor, withTimeout, uniq, describeSeqProblem };
