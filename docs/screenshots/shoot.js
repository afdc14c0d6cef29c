// How the README's screenshots are taken: headless Chromium (Debian's) driven by playwright-core, against a
// running `dagster dev` on 127.0.0.1:3000 with materialized demo partitions (see docs/screenshots/README.md).
//   node shoot.js markdown <asset page url> <metadata key> <out.png>   open a metadata markdown (gallery, map)
//   node shoot.js runlog <out.png> <text to wait for>                   the newest run's log while it runs
//   node shoot.js page <url> <out.png> [text to click] [text to wait for] a page (e.g. an asset's Checks tab)
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

async function plain(page, url, click, waitText) {
  await page.goto(url, { waitUntil: 'networkidle', timeout: 60000 });
  await page.waitForTimeout(2000);
  if (click) {
    await page.getByText(click, { exact: false }).first().click();
    await page.waitForTimeout(2000);
  }
  if (waitText) await page.getByText(waitText, { exact: false }).first().waitFor({ timeout: 60000 });
}

(async () => {
  const [mode, ...args] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  if (mode === 'markdown') await markdown(page, args[0], args[1]);
  else if (mode === 'page') await plain(page, args[0], args[2], args[3]);
  else await runlog(page, args[1]);
  await page.screenshot({ path: { markdown: args[2], page: args[1] }[mode] || args[0], fullPage: mode === 'page' });
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
