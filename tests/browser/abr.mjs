// Adaptive bitrate in a real browser: hls.js in headless Chromium plays a multivariant playlist,
// reaches the top rendition, then the page's network is throttled through the DevTools protocol
// (Network.emulateNetworkConditions) below the top rendition's BANDWIDTH; hls.js must switch
// down without a stall, and switch back up once the throttle is lifted. Prints one JSON report.
//
// usage: node abr.mjs <multivariant-url> <phase-deadline-seconds>
//
// Phases, each ended by an event the page saw, never by a fixed wait (every phase gives up after
// the deadline, and the report says where it stopped):
//   start      hls.js loads the playlist with its start level capped at the top rendition
//              (hls.startLevel = last level; ABR stays automatic) until that level plays...
//   top        ...and the video advanced HOLD_S seconds on it.
//   throttled  download throughput limited to min((top + next) / 2, 0.7 * top) of the levels'
//              BANDWIDTH (bit/s); ends once a lower level plays (LEVEL_SWITCHED, which hls.js
//              fires when the playhead enters a fragment of another level) and the video
//              advanced HOLD_S seconds after it.
//   lifted     throttle removed; ends when the top level plays again (or, at the deadline, the
//              report shows whether any higher level played).
// A stall, as the report counts it, is either hls.js's `bufferStalledError`, or a run of samples
// (every 250 ms) at least STALL_MS long in which the video, past its first `playing` event and
// neither paused nor ended, did not advance its currentTime. Stalls are recorded with the phase
// they began in; the caller asserts none after `start` (from the moment the top level played).
// hls.js runs with lowLatencyMode off: this is a viewer's bandwidth adaptation with a normal
// buffer (the LL-HLS behaviour has its own test, llhls.mjs).
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';

const require = createRequire(import.meta.url);
const hlsJs = readFileSync(require.resolve('hls.js/dist/hls.min.js'));
const hlsVersion = require('hls.js/package.json').version;

const [url, deadlineArg] = process.argv.slice(2);
const deadlineMs = Number(deadlineArg) * 1000;
if (!url || !deadlineMs) {
  console.error('usage: node abr.mjs <multivariant-url> <phase-deadline-seconds>');
  process.exit(2);
}
const HOLD_S = 4;
const STALL_MS = 1000;

const PAGE = `<!doctype html><html><body>
<video id="v" muted autoplay playsinline width="320"></video>
<script src="/hls.min.js"></script>
<script>
  const STALL_MS = ${STALL_MS};
  const r = window.r = { phase: 'start', levels: [], switches: [], stalls: [], errors: [],
    fatal: [], waiting: 0, playing: false, level: -1, currentTime: 0, fragsLoaded: 0 };
  const v = document.getElementById('v');
  const hls = new Hls({ debug: false, enableWorker: true, lowLatencyMode: false });
  hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => {
    r.levels = d.levels.map((l) => ({ bitrate: l.bitrate, height: l.height, url: l.url[0] }));
    hls.startLevel = d.levels.length - 1;
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_e, d) => {
    r.level = d.level;
    if (r.phase === 'start' && d.level === hls.levels.length - 1) r.phase = 'top';
    r.switches.push({ level: d.level, phase: r.phase, t: Math.round(performance.now()),
      currentTime: v.currentTime });
  });
  hls.on(Hls.Events.FRAG_LOADED, () => { r.fragsLoaded++; });
  hls.on(Hls.Events.ERROR, (_e, d) => {
    const rec = { details: d.details, fatal: d.fatal, phase: r.phase, t: Math.round(performance.now()),
      code: d.response && d.response.code, reason: String(d.reason || d.error || '').slice(0, 200) };
    if (r.errors.length < 100) r.errors.push(rec);
    if (d.fatal) r.fatal.push(rec);
    if (d.details === 'bufferStalledError') r.stalls.push({ kind: 'bufferStalledError', phase: r.phase,
      t: rec.t, currentTime: v.currentTime });
  });
  v.addEventListener('playing', () => { r.playing = true; });
  v.addEventListener('waiting', () => { if (r.playing) r.waiting++; });
  let last = -1, still = 0, inStall = false;
  setInterval(() => {
    r.currentTime = v.currentTime;
    if (!r.playing || v.paused || v.ended) { last = v.currentTime; still = 0; return; }
    if (v.currentTime === last) {
      still += 250;
      if (still >= STALL_MS && !inStall) {
        inStall = true;
        r.stalls.push({ kind: 'no-progress', phase: r.phase, t: Math.round(performance.now()),
          currentTime: v.currentTime });
      }
    } else { still = 0; inStall = false; }
    last = v.currentTime;
  }, 250);
  hls.loadSource(${JSON.stringify(url)});
  hls.attachMedia(v);
  v.play().catch(() => {});
</script></body></html>`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
let exitCode = 0;
const out = { hlsjs: hlsVersion, url, reached: [], throttleBps: null, console: [] };
try {
  const page = await (await browser.newContext()).newPage();
  page.on('console', (m) => { if (out.console.length < 30) out.console.push(m.text().slice(0, 300)); });
  page.on('pageerror', (e) => out.console.push(`pageerror: ${String(e).slice(0, 300)}`));
  const server = createServer((req, res) => {
    if (req.url.startsWith('/hls.min.js')) {
      res.writeHead(200, { 'content-type': 'application/javascript' });
      res.end(hlsJs);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(PAGE);
    }
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  server.unref();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const throttle = (bps) => cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: bps > 0 ? 20 : 0,
    downloadThroughput: bps > 0 ? bps / 8 : -1,
    uploadThroughput: -1,
  });
  await page.goto(`http://127.0.0.1:${server.address().port}/abr.html`);

  const state = () => page.evaluate(() => window.r);
  const setPhase = (p) => page.evaluate((x) => { window.r.phase = x; }, p);
  // Polls the page until `done(state)` holds; false at the deadline (or on a fatal error).
  const until = async (done) => {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const s = await state();
      if (done(s)) return true;
      if (s.fatal.length > 0 || Date.now() > end) return false;
      await page.waitForTimeout(250);
    }
  };
  // The level playing has advanced HOLD_S seconds since the last LEVEL_SWITCHED.
  const held = (s) => {
    const sw = s.switches[s.switches.length - 1];
    return sw && s.currentTime - sw.currentTime >= HOLD_S;
  };
  const top = (s) => s.levels.length - 1;

  if (await until((s) => s.playing && s.levels.length > 1 && s.level === top(s) && held(s))) {
    out.reached.push('top');
    const s = await state();
    const bw = s.levels.map((l) => l.bitrate);
    const t = bw[top(s)];
    out.throttleBps = Math.round(Math.min((t + bw[top(s) - 1]) / 2, 0.7 * t));
    await setPhase('throttled');
    await throttle(out.throttleBps);
    if (await until((x) => x.level >= 0 && x.level < top(x) && held(x))) {
      out.reached.push('down');
      await setPhase('lifted');
      await throttle(0);
      const low = (await state()).level;
      if (await until((x) => x.level === top(x))) out.reached.push('up');
      else if ((await state()).switches.some((w) => w.phase === 'lifted' && w.level > low)) {
        out.reached.push('higher');
      }
    }
  }
  out.report = await state();
} catch (e) {
  console.error(String((e && e.stack) || e));
  exitCode = 1;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(exitCode);
