// Plays an HLS URL with hls.js in headless Chromium and reports what the player saw as JSON.
//
// usage: node play.mjs <playlist-url> <seconds> [page-url]
//
// The page and hls.js (from node_modules) are served by a small HTTP server on 127.0.0.1 (a real
// loopback origin, so Chromium's local-network-access rules allow the fetch; it is still
// cross-origin, so CORS is exercised). If page-url is given
// (e.g. Sluice's own preview page) that page is loaded instead and its hls.js requests are
// answered from node_modules.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';

const require = createRequire(import.meta.url);
const hlsPath = require.resolve('hls.js/dist/hls.min.js');
const hlsJs = readFileSync(hlsPath);

const [url, secondsArg, pageUrl] = process.argv.slice(2);
const seconds = Number(secondsArg || 30);
if (!url) {
  console.error('usage: node play.mjs <playlist-url> <seconds> [page-url]');
  process.exit(2);
}

const PAGE = `<!doctype html><html><body>
<video id="v" muted autoplay playsinline></video>
<script src="/hls.min.js"></script>
<script>
  window.report = { errors: [], fatal: [], stalls: 0, samples: [], fragsLoaded: 0, levelDetails: null, mse: null };
  const v = document.getElementById('v');
  window.report.mse = MediaSource.isTypeSupported('video/mp4; codecs="avc1.64001f,mp4a.40.2"');
  const hls = new Hls({ debug: false, enableWorker: true, lowLatencyMode: false });
  hls.on(Hls.Events.ERROR, (_e, d) => {
    const rec = { type: d.type, details: d.details, fatal: d.fatal, t: performance.now(), code: d.response && d.response.code, reason: String(d.reason || d.error || "").slice(0, 200) };
    window.report.errors.push(rec);
    if (d.fatal) window.report.fatal.push(rec);
    if (d.details === 'bufferStalledError') window.report.stalls++;
  });
  hls.on(Hls.Events.FRAG_LOADED, () => { window.report.fragsLoaded++; });
  hls.on(Hls.Events.LEVEL_LOADED, (_e, d) => {
    window.report.levelDetails = { live: d.details.live, targetduration: d.details.targetduration,
      startSN: d.details.startSN, endSN: d.details.endSN };
  });
  hls.loadSource(${JSON.stringify(url)});
  hls.attachMedia(v);
  v.play().catch(() => {});
  setInterval(() => window.report.samples.push({ t: performance.now(), currentTime: v.currentTime,
    readyState: v.readyState, buffered: v.buffered.length ? v.buffered.end(v.buffered.length - 1) : 0,
    width: v.videoWidth, height: v.videoHeight }), 500);
</script></body></html>`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
let exitCode = 0;
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(m.text().slice(0, 300)));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${String(e).slice(0, 300)}`));
  await page.route(/\/hls(\.min)?\.js(\?.*)?$/, (route) =>
    route.fulfill({ status: 200, contentType: 'application/javascript', body: hlsJs }));
  if (pageUrl) {
    await page.goto(pageUrl);
  } else {
    const server = createServer((req, res) => {
      if (req.url.startsWith('/hls.min.js')) {
        res.writeHead(200, { 'content-type': 'application/javascript' });
        res.end(hlsJs);
      } else {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(PAGE);
      }
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    server.unref();
    await page.goto(`http://127.0.0.1:${server.address().port}/player.html`);
  }
  await page.waitForTimeout(seconds * 1000);
  // On our own test page `window.report` holds the hls.js events; on any other page (the preview
  // page) report what a person would see: the listed streams and how far each video played.
  const report = await page.evaluate(() => window.report || {
    preview: [...document.querySelectorAll('.stream')].map((el) => ({
      id: el.dataset.id,
      meta: el.querySelector('.meta')?.textContent || '',
      currentTime: el.querySelector('video')?.currentTime || 0,
      width: el.querySelector('video')?.videoWidth || 0,
      // A group's card: the rendition picker's choices and what plays.
      renditions: [...el.querySelectorAll('select.rendition option')].map((o) => o.textContent),
      playing: el.querySelector('.levels .playing')?.textContent || '',
    })),
  });
  console.log(JSON.stringify({ report, console: consoleLines.slice(-50) }));
} catch (e) {
  console.error(String(e && e.stack || e));
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
