// Opens Sluice's preview page (the operator console) in headless Chromium, waits until every
// listed stream's graphs have data (and, if asked, until a stream shows a given warning), saves a
// full-page screenshot and prints what a person would see as JSON.
//
// usage: node console.mjs <page-url> <max-seconds> <screenshot.png> [app/stream=warning-kind ...]
import { chromium } from 'playwright-core';

const [pageUrl, secondsArg, shot, ...expect] = process.argv.slice(2);
if (!pageUrl || !shot) {
  console.error('usage: node console.mjs <page-url> <max-seconds> <screenshot.png> [app/stream=warning-kind ...]');
  process.exit(2);
}
const wanted = expect.map((e) => e.split('='));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
let exitCode = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleLines = [];
  const requests = [];
  page.on('console', (m) => consoleLines.push(m.text().slice(0, 300)));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${String(e).slice(0, 300)}`));
  // Everything the page loads must come from the server itself (no CDN).
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(pageUrl);
  const snapshot = () => page.evaluate(() => ({
    fleet: document.getElementById('fleet')?.textContent || '',
    hlsLoaded: typeof window.Hls === 'function',
    streams: [...document.querySelectorAll('.stream')].map((el) => ({
      id: el.dataset.id,
      classes: el.className,
      health: el.querySelector('.health')?.textContent || '',
      meta: el.querySelector('.meta')?.textContent || '',
      currentTime: el.querySelector('video')?.currentTime || 0,
      graphs: [...el.querySelectorAll('.graph')].map((g) => ({
        metric: g.dataset.metric,
        points: Number(g.dataset.points),
        polyline: (g.querySelector('polyline.data')?.getAttribute('points') || '').split(' ').filter(Boolean).length,
        value: g.querySelector('.value')?.textContent || '',
        alert: g.classList.contains('alert'),
      })),
      warnings: [...el.querySelectorAll('.warnings li')].map((li) => ({
        kind: li.dataset.kind, active: li.classList.contains('active'), text: li.textContent,
      })),
    })),
  }));
  const deadline = Date.now() + Number(secondsArg || 30) * 1000;
  let s = await snapshot();
  for (;;) {
    const graphsFull = s.streams.length > 0 && s.streams.every((st) => st.graphs.every((g) => g.points >= 3));
    const warned = wanted.every(([id, kind]) => s.streams.some((st) => st.id === id &&
      st.warnings.some((w) => w.active && w.kind === kind)));
    const playing = s.streams.some((st) => st.currentTime > 1);
    if ((graphsFull && warned && playing) || Date.now() > deadline) break;
    await page.waitForTimeout(500);
    s = await snapshot();
  }
  await page.screenshot({ path: shot, fullPage: true });
  const origin = new URL(pageUrl).origin;
  const foreign = requests.filter((u) => !u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:'));
  console.log(JSON.stringify({ report: s, foreign, console: consoleLines.slice(-30) }));
} catch (e) {
  console.error(String(e && e.stack || e));
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
