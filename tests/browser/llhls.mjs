// Plays one or more live HLS URLs side by side with hls.js in headless Chromium and reports, per
// player, what a low-latency viewer cares about, as one JSON line on stdout.
//
// usage: node llhls.mjs <seconds> <mode>:<playlist-url> [<mode>:<playlist-url> ...]
//   mode `ll`  : hls.js with lowLatencyMode: true (loads parts, blocking reloads, starts at
//                PART-HOLD-BACK; RFC 8216bis §6.2.5 / Appendix C)
//   mode `llsync`: as `ll`, plus maxLiveSyncPlaybackRate: 1.5 (hls.js may play up to 1.5x to
//                catch up with its target latency; off by default in hls.js)
//   mode `std` : hls.js with lowLatencyMode: false (a player that ignores LL-HLS)
//
// Every player is an hls.js instance in the same page with its own <video>, so a side-by-side
// comparison sees the same browser, machine load and wall clock. Per player the report holds:
//   latency      hls.latency samples (s) every 500 ms once playing (hls.js's distance to the
//                live edge it computed from the playlist)
//   pdtDelay     now - hls.playingDate (s): wall-clock delay from the moment the origin received
//                the frame on screen (EXT-X-PROGRAM-DATE-TIME is the arrival time) to its display
//   partDelay    per part buffered: now - (PDT of the part's end) (s): part available at the
//                origin -> part in the player's buffer
//   requests     every request URL the page made for this player's origin (path and query),
//                from Chromium's own network events, not from hls.js
//   stalls       bufferStalledError count; waiting: <video> `waiting` events after first play
//   firstPlayingMs  page time of the first `playing` event (a slow start on a loaded machine
//                leaves a player that does not catch up further behind for the whole run)
//   fatal        fatal hls.js errors
// The page and hls.js (node_modules) are served from a loopback HTTP server, as in play.mjs.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:http';

const require = createRequire(import.meta.url);
const hlsJs = readFileSync(require.resolve('hls.js/dist/hls.min.js'));
const hlsVersion = require('hls.js/package.json').version;

const [secondsArg, ...specs] = process.argv.slice(2);
const seconds = Number(secondsArg);
const players = specs.map((s) => {
  const i = s.indexOf(':');
  return { mode: s.slice(0, i), url: s.slice(i + 1) };
});
if (!seconds || players.length === 0 || players.some((p) => !['ll', 'llsync', 'std'].includes(p.mode))) {
  console.error('usage: node llhls.mjs <seconds> <ll|llsync|std>:<playlist-url> ...');
  process.exit(2);
}

const PAGE = `<!doctype html><html><body>
<script src="/hls.min.js"></script>
<script>
  const players = ${JSON.stringify(players)};
  window.reports = players.map((p, i) => {
    const r = { mode: p.mode, url: p.url, errors: [], fatal: [], stalls: 0, waiting: 0, playing: false,
      latency: [], pdtDelay: [], partDelay: [], targetLatency: null, fragsLoaded: 0, partsLoaded: 0,
      levelDetails: null, samples: [] };
    const v = document.createElement('video');
    v.muted = true; v.autoplay = true; v.playsInline = true; v.width = 320;
    document.body.appendChild(v);
    v.addEventListener('playing', () => {
      if (!r.playing) r.firstPlayingMs = Math.round(performance.now());
      r.playing = true;
    });
    v.addEventListener('waiting', () => { if (r.playing) r.waiting++; });
    const cfg = { debug: false, enableWorker: true, lowLatencyMode: p.mode !== 'std' };
    if (p.mode === 'llsync') cfg.maxLiveSyncPlaybackRate = 1.5;
    const hls = new Hls(cfg);
    hls.on(Hls.Events.ERROR, (_e, d) => {
      const rec = { type: d.type, details: d.details, fatal: d.fatal, t: performance.now(),
        code: d.response && d.response.code, reason: String(d.reason || d.error || '').slice(0, 200) };
      if (r.errors.length < 200) r.errors.push(rec);
      if (d.fatal) r.fatal.push(rec);
      if (d.details === 'bufferStalledError') r.stalls++;
    });
    hls.on(Hls.Events.FRAG_LOADED, (_e, d) => { if (d.part) r.partsLoaded++; else r.fragsLoaded++; });
    hls.on(Hls.Events.FRAG_BUFFERED, (_e, d) => {
      const part = d.part, frag = d.frag;
      if (!part || !frag || !Number.isFinite(frag.programDateTime)) return;
      const endMs = frag.programDateTime + (part.start - frag.start + part.duration) * 1000;
      r.partDelay.push((Date.now() - endMs) / 1000);
    });
    hls.on(Hls.Events.LEVEL_LOADED, (_e, d) => {
      const x = d.details;
      r.levelDetails = { live: x.live, targetduration: x.targetduration, partTarget: x.partTarget,
        canBlockReload: x.canBlockReload, canSkipUntil: x.canSkipUntil, partHoldBack: x.partHoldBack,
        parts: x.partList ? x.partList.length : 0, preloadHint: !!x.preloadHint,
        renditionReports: x.renditionReports ? x.renditionReports.length : 0,
        startSN: x.startSN, endSN: x.endSN, skipped: x.skippedSegments || 0 };
    });
    hls.loadSource(p.url);
    hls.attachMedia(v);
    v.play().catch(() => {});
    setInterval(() => {
      r.samples.push({ t: performance.now(), currentTime: v.currentTime, readyState: v.readyState,
        width: v.videoWidth });
      if (!r.playing || v.paused) return;
      if (Number.isFinite(hls.latency) && hls.latency > 0) r.latency.push(hls.latency);
      r.targetLatency = hls.targetLatency;
      const d = hls.playingDate;
      if (d && Number.isFinite(d.getTime()) && d.getTime() > 0) r.pdtDelay.push((Date.now() - d.getTime()) / 1000);
    }, 500);
    return r;
  });
</script></body></html>`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
let exitCode = 0;
try {
  const page = await (await browser.newContext()).newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(m.text().slice(0, 300)));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${String(e).slice(0, 300)}`));
  // Request log per player origin (scheme://host:port), capped so a long run stays small.
  const origins = players.map((p) => new URL(p.url).origin);
  const requests = players.map(() => []);
  page.on('request', (req) => {
    const u = new URL(req.url());
    origins.forEach((o, i) => {
      if (u.origin === o && new URL(players[i].url).pathname.split('/').slice(0, -1).join('/') ===
        u.pathname.split('/').slice(0, -1).join('/') && requests[i].length < 20000) {
        requests[i].push(u.pathname + u.search);
      }
    });
  });
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
  await page.waitForTimeout(seconds * 1000);
  const reports = await page.evaluate(() => window.reports);
  reports.forEach((r, i) => { r.requests = requests[i]; });
  console.log(JSON.stringify({ hlsjs: hlsVersion, players: reports, console: consoleLines.slice(-30) }));
} catch (e) {
  console.error(String((e && e.stack) || e));
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
