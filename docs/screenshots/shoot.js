// How the README's screenshots are taken: headless Chromium (Debian's) driven by playwright-core, against a
// running `dagster dev` on 127.0.0.1:3000 with materialized demo partitions (see docs/screenshots/README.md).
//   node shoot.js markdown <asset page url> <metadata key> <out.png>   open a metadata markdown (gallery, map)
//   node shoot.js runlog <out.png> <text to wait for>                   the newest run's log while it runs
//   node shoot.js checks <asset checks url> <check name> <tab> <out.png>  one check's tab (e.g. Execution history)
const { chromium } = require('playwright-core');

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic'];

async function markdown(page, url, key) {
  await page.goto(url, { waitUntil: 'networkidle', timeout: 60000 });
  await page.waitForTimeout(2000);
  const row = page.locator('tr', { hasText: key }).first();
  await row.scrollIntoViewIfNeeded();
  await row.getByText('[Show Markdown]').first().click();
  await page.waitForTimeout(2000);
}

async function runlog(page, waitText) {
  await page.goto('http://127.0.0.1:3000/runs', { waitUntil: 'networkidle', timeout: 60000 });
  await page.waitForTimeout(1500);
  await page.locator('a[href^="/runs/"]').first().click();
  await page.getByText(waitText, { exact: false }).first().waitFor({ timeout: 120000 });
  await page.waitForTimeout(1500);
}

async function checks(page, url, check, tab) {
  await page.goto(url, { waitUntil: 'networkidle', timeout: 90000 });
  const entry = page.getByText(check, { exact: false }).first();
  await entry.waitFor({ timeout: 90000 });
  await entry.click();
  await page.waitForTimeout(3000);
  await page.getByText(tab, { exact: true }).first().click();
  await page.waitForTimeout(5000);
}

(async () => {
  const [mode, ...args] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
  const page = await browser.newPage({ viewport: { width: 1500, height: mode === 'checks' ? 900 : 1000 } });
  if (mode === 'markdown') await markdown(page, args[0], args[1]);
  else if (mode === 'checks') await checks(page, args[0], args[1], args[2]);
  else await runlog(page, args[1]);
  await page.screenshot({ path: { markdown: args[2], checks: args[3] }[mode] || args[0], fullPage: mode === 'checks' });
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
