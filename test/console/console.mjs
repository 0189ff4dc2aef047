// Browser test of Kappa's web console: Playwright (playwright-core) drives
// Debian's chromium headless through the deploy-free flows: functions
// list → function page → invoke → the result and its log tail → the live
// log view → a chart that updates → registry → billing, checking on the
// way that nothing rendered is interpreted as markup. Screenshots go to
// $SCREENSHOT_DIR.
//
// Environment: KAPPA_URL (server), KAPPA_FUNCTION (an Active function of
// the probe image), KAPPA_REPO (its repository), SCREENSHOT_DIR, CHROMIUM
// (default /usr/bin/chromium). Exit status 0 on success; failures are
// printed.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.env.KAPPA_URL;
const fn = process.env.KAPPA_FUNCTION;
const repo = process.env.KAPPA_REPO;
const shots = process.env.SCREENSHOT_DIR || 'build/console';
if (!base || !fn || !repo) {
  console.error('set KAPPA_URL, KAPPA_FUNCTION and KAPPA_REPO');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const problems = [];
const step = (msg) => console.log('step: ' + msg);
function check(cond, msg) {
  if (!cond) problems.push(msg);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});
let page;
try {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 1100 } });
  page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push('console error: ' + m.text());
  });
  // An escaping canary: if any rendered string were parsed as HTML, this
  // handler-bearing markup would run and set the flag.
  await page.addInitScript(() => { window.__pwned = false; });

  step('functions list');
  await page.goto(base + '/');
  const row = page.locator(`[data-testid="fn-row-${fn}"]`);
  await row.waitFor();
  await page.locator('[data-testid="host"] b').first().waitFor();
  check((await row.locator('.badge').first().textContent()) === 'Active', 'the function is not shown Active');
  check(await row.locator('svg.spark polyline').count() >= 1, 'no sparkline in the functions list');
  await page.screenshot({ path: join(shots, '01-functions.png'), fullPage: true });

  step('function page');
  await row.locator('a').click();
  await page.waitForURL(/#\/fn\//);
  const config = page.locator('[data-testid="config"] dl');
  await config.waitFor();
  const desc = await config.locator('dd').nth(3).textContent();
  check(desc.includes('<img src=x onerror="window.__pwned=true">'), `the description is not shown as text: ${desc}`);
  check(await page.locator('[data-testid="config"] img').count() === 0, 'the description was rendered as markup');
  await page.locator('[data-testid="versions"] table').waitFor();
  check((await page.locator('[data-testid="versions"]').textContent()).includes('live'), 'the alias is not listed');
  const invChart = page.locator('[data-testid="chart-invocations"]');
  await invChart.waitFor();
  for (const id of ['errors', 'duration', 'concurrency', 'coldstarts']) {
    check(await page.locator(`[data-testid="chart-${id}"] svg`).count() === 1, `no ${id} chart`);
  }
  const before = Number(await invChart.getAttribute('data-total'));

  step('live log view connects');
  await page.locator('.badge.ok', { hasText: 'live' }).waitFor();

  step('invoke');
  const marker = 'console-marker-' + Date.now();
  const hostile = '<script>window.__pwned=true</script><b>bold?</b>';
  await page.locator('[data-testid="payload"]').fill(JSON.stringify({ op: 'echo', text: hostile, log: marker + ' ' + hostile }, null, 2));
  await page.locator('[data-testid="invoke"]').click();
  const result = page.locator('[data-testid="invoke-payload"]');
  await result.waitFor();
  const payload = await result.textContent();
  check(payload.includes(hostile), `the result does not show the payload as text: ${payload}`);
  check((await page.locator('[data-testid="invoke-result"] .badge').first().textContent()) === 'Succeeded', 'the invocation is not shown as succeeded');
  const tail = await page.locator('[data-testid="invoke-log"]').textContent();
  // The function's own line usually makes the tail too, but may reach the
  // server just after the response (the invoker waits up to 20 ms for it);
  // the live log view below must show it in any case.
  check(/START RequestId: /.test(tail) && /REPORT RequestId: /.test(tail), `the log tail lacks START/REPORT: ${tail}`);

  step('the line appears in the live log view');
  const logLine = page.locator('[data-testid="log-view"] .logline', { hasText: marker });
  await logLine.first().waitFor();
  check((await logLine.first().textContent()).includes(hostile), 'the log line is not shown as text');
  check(await page.locator('[data-testid="log-view"] b').count() === 0, 'a log line was rendered as markup');
  await page.locator('[data-testid="log-view"] .logline.platform', { hasText: 'REPORT RequestId' }).first().waitFor();

  step('the invocations chart updates');
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid="chart-invocations"]').getAttribute('data-total')) > n, before);
  check(await invChart.locator('rect').count() >= 1, 'the invocations chart has no bars');
  await page.screenshot({ path: join(shots, '02-function.png'), fullPage: true });

  step('a function error');
  await page.locator('[data-testid="payload"]').fill('{"op":"error","text":"on purpose"}');
  await page.locator('[data-testid="invoke"]').click();
  await page.locator('[data-testid="invoke-result"] .badge', { hasText: 'Function error: Unhandled' }).waitFor();
  await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart-errors"]').getAttribute('data-total')) >= 1);

  step('invalid JSON is refused before sending');
  await page.locator('[data-testid="payload"]').fill('{nope');
  await page.locator('[data-testid="invoke"]').click();
  await page.locator('[data-testid="invoke-result"] .error', { hasText: 'not valid JSON' }).waitFor();

  step('registry');
  await page.locator('nav a[data-nav="registry"]').click();
  const repoRow = page.locator(`[data-testid="repo-${repo}"]`);
  await repoRow.waitFor();
  check((await repoRow.textContent()).includes(fn), 'the registry does not show which function uses the repository');
  await page.screenshot({ path: join(shots, '03-registry.png'), fullPage: true });

  step('billing');
  await page.locator('nav a[data-nav="billing"]').click();
  const bill = page.locator(`[data-testid="bill-${fn}"]`);
  await bill.waitFor();
  const gbs = Number((await bill.locator('td').nth(3).textContent()).trim());
  check(gbs > 0, `no GB-seconds billed: ${gbs}`);
  await page.screenshot({ path: join(shots, '04-billing.png'), fullPage: true });

  check(await page.evaluate(() => window.__pwned) === false, 'injected markup ran');
} catch (e) {
  problems.push('step failed: ' + (e && e.message ? e.message.split('\n')[0] : e));
  if (page) await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
if (problems.length) {
  console.error('console test failed:\n  ' + problems.join('\n  '));
  process.exit(1);
}
console.log('console test passed; screenshots in ' + shots);
