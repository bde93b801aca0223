// DVR check with hls.js in headless Chromium: loads a DVR playlist (EVENT or sliding window),
// waits for playback near the live edge, seeks `back` seconds behind it and plays there, then
// seeks back to live; prints a JSON report of what the player did.
//
// usage: node dvr.mjs <dvr-playlist-url> <back-seconds>
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';

const require = createRequire(import.meta.url);
const hlsJs = readFileSync(require.resolve('hls.js/dist/hls.min.js'));
const [url, backArg] = process.argv.slice(2);
const back = Number(backArg || 90);

const PAGE = `<!doctype html><html><body>
<video id="v" muted autoplay playsinline></video>
<script src="/hls.min.js"></script>
<script>
  window.report = { errors: [], fatal: [], phases: {} };
  const v = document.getElementById('v');
  const hls = new Hls({ enableWorker: true, lowLatencyMode: false });
  window.hls = hls;
  hls.on(Hls.Events.ERROR, (_e, d) => {
    const rec = { type: d.type, details: d.details, fatal: d.fatal };
    window.report.errors.push(rec);
    if (d.fatal) window.report.fatal.push(rec);
  });
  hls.on(Hls.Events.LEVEL_LOADED, (_e, d) => {
    window.report.level = { live: d.details.live, type: d.details.type, totalduration: d.details.totalduration,
      startSN: d.details.startSN, endSN: d.details.endSN };
  });
  hls.loadSource(${JSON.stringify(url)});
  hls.attachMedia(v);
  v.play().catch(() => {});
</script></body></html>`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
let exitCode = 0;
try {
  const page = await (await browser.newContext()).newPage();
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
  await page.goto(`http://127.0.0.1:${server.address().port}/dvr.html`);
  const state = () => page.evaluate(() => {
    const v = document.getElementById('v');
    return { currentTime: v.currentTime, paused: v.paused, readyState: v.readyState,
      seekableStart: v.seekable.length ? v.seekable.start(0) : null,
      seekableEnd: v.seekable.length ? v.seekable.end(0) : null,
      liveSync: window.hls.liveSyncPosition };
  });
  // Events, not timings: wait (generously) until the player plays near live.
  const waitFor = async (pred, ms) => {
    const until = Date.now() + ms;
    let s = await state();
    while (!pred(s) && Date.now() < until) {
      await page.waitForTimeout(250);
      s = await state();
    }
    return s;
  };
  const phases = {};
  phases.live = await waitFor((s) => s.currentTime > 0 && s.readyState >= 3, 30000);
  const target = Math.max(phases.live.seekableStart || 0, phases.live.currentTime - back);
  phases.target = target;
  await page.evaluate((t) => { document.getElementById('v').currentTime = t; }, target);
  phases.seeked = await waitFor((s) => s.currentTime > target + 3 && s.currentTime < target + 20, 30000);
  const liveTarget = (await state()).liveSync;
  phases.liveTarget = liveTarget;
  await page.evaluate((t) => { const v = document.getElementById('v'); v.currentTime = t; }, liveTarget);
  phases.backToLive = await waitFor((s) => s.currentTime > liveTarget + 1, 30000);
  const report = await page.evaluate(() => window.report);
  report.phases = phases;
  console.log(JSON.stringify({ report }));
} catch (e) {
  console.error(String(e && e.stack || e));
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
