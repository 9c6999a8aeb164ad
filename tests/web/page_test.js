// Drives koe's web page in Debian's headless Chromium through playwright-core (tests/test_web.sh).
//
//   node tests/web/page_test.js <base url> <screenshot.png>
//
// Every wait below waits for a state the page reports (data-* attributes on <body>), never for a
// fixed time; the timeouts are only upper bounds for a broken server.
'use strict';
const fs = require('fs');
const { chromium } = require('playwright-core');

// axe-core, the accessibility rule engine; evaluated through DevTools so the page's own
// Content-Security-Policy (script-src 'self') stays in force for everything else.
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error('usage: node page_test.js <base url> <screenshot.png>');
  process.exit(2);
}
const LIMIT = 120000; // ms, upper bound for any one wait on a loaded 2-core machine

let fails = 0;
function check(what, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${!ok && detail !== undefined ? ` (${detail})` : ''}`);
  if (!ok) fails++;
}
const data = (page) => page.evaluate(() => Object.assign({}, document.body.dataset));

// WCAG 2.1 A and AA rules, in light and dark colours.
async function checkAccessibility(page, when) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE);
  for (const colorScheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme });
    const violations = await page.evaluate(async () => {
      const r = await window.axe.run(document, {
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
      });
      return r.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    });
    check(`accessibility (axe, WCAG 2.1 AA, ${colorScheme}) ${when}`, violations.length === 0, violations.join(' | '));
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.KOE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Playwright gives the browser a fresh profile folder; the flags keep Chromium off the
    // (closed) network and let the AudioContext run in a headless browser.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required'],
  });
  try {
    await run(browser);
  } finally {
    await browser.close();
  }
}

async function run(browser) {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  const page = await context.newPage();
  const pageErrors = [];
  const foreign = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // The browser logs every 4xx answer as a console error; the 400 below is deliberate.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(m.text());
  });
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(base + '/') && !url.startsWith('data:') && !url.startsWith('blob:')) foreign.push(url);
  });

  const response = await page.goto(base + '/');
  check('GET / answers 200', response.status() === 200, response.status());
  check('GET / is HTML', /^text\/html/.test(response.headers()['content-type'] || ''),
    response.headers()['content-type']);

  // The voice list comes from the API.
  await page.waitForFunction(() => document.body.dataset.voices !== undefined, null, { timeout: LIMIT });
  const voices = await page.locator('#voice option').evaluateAll((os) => os.map((o) => o.value));
  check('voice picker filled from /v1/audio/voices', voices.length > 1 && voices.every(Boolean), voices.join(','));
  check('no error after loading the voices', (await page.locator('#error').textContent()) === '',
    await page.locator('#error').textContent());

  // The page's own parts, checked in the browser with known inputs (window.koe).
  const parts = await page.evaluate(async () => {
    const out = {};
    // PCM split at odd byte boundaries (inside samples), rendered offline and compared sample by
    // sample with the signal that went in.
    const rate = 24000;
    const n = 4000;
    const samples = new Int16Array(n);
    for (let i = 0; i < n; i++) samples[i] = Math.round(12000 * Math.sin(0.05 * i + 0.3));
    const bytes = new Uint8Array(samples.buffer);
    const offline = new OfflineAudioContext(1, rate, rate);
    const player = new koe.PcmPlayer(offline, () => {});
    player.configure(rate, 1);
    const sizes = [1, 3, 7, 1001, 2, 5];
    for (let at = 0, k = 0; at < bytes.length; k++) {
      const m = sizes[k % sizes.length];
      player.push(bytes.slice(at, at + m));
      at += m;
    }
    player.end();
    const rendered = (await offline.startRendering()).getChannelData(0);
    const first = rendered.findIndex((x) => x !== 0);
    let maxErr = 0;
    for (let i = 0; i < n; i++) maxErr = Math.max(maxErr, Math.abs(rendered[first + i] - samples[i] / 32768));
    let after = 0;
    for (let i = first + n; i < rendered.length; i++) after = Math.max(after, Math.abs(rendered[i]));
    out.pcm = { frames: player.frames, buffers: player.scheduled, first, maxErr, after };

    // A streamed WAV header (unknown sizes, an extra chunk before the data) fed a byte at a time.
    const header = new Uint8Array(44 + 12);
    const v = new DataView(header.buffer);
    const put = (at, t) => [...t].forEach((c, i) => v.setUint8(at + i, c.charCodeAt(0)));
    put(0, 'RIFF'); v.setUint32(4, 0xffffffff, true); put(8, 'WAVE');
    put(12, 'LIST'); v.setUint32(16, 4, true); put(20, 'INFO');
    put(24, 'fmt '); v.setUint32(28, 16, true); v.setUint16(32, 1, true); v.setUint16(34, 2, true);
    v.setUint32(36, 22050, true); v.setUint32(40, 22050 * 4, true); v.setUint16(44, 4, true); v.setUint16(46, 16, true);
    put(48, 'data'); v.setUint32(52, 0xffffffff, true);
    const got = { configured: null, bytes: [] };
    const reader = new koe.WavReader({
      configure: (r, c) => { got.configured = `${r}/${c}`; },
      push: (b) => got.bytes.push(...b),
    });
    const stream = [...header, 9, 8, 7, 6, 5];
    for (const b of stream) reader.push(new Uint8Array([b]));
    out.wav = { configured: got.configured, payload: got.bytes.join(',') };
    try {
      new koe.WavReader({ configure() {}, push() {} }).push(new TextEncoder().encode('ID3\x04 not a wav file'));
      out.wavBad = 'accepted';
    } catch (e) {
      out.wavBad = e.message;
    }

    // Voice lists in the shapes a server may use.
    const names = (j) => koe.parseVoices(j).map((x) => `${x.name}|${x.language}|${x.gender}`).join(' ');
    out.voices = [
      names(['af_heart', 'bm_george']),
      names({ voices: [{ name: 'x1', language: 'en-gb', gender: 'F' }] }),
      names({ data: [{ id: 'ef_dora' }] }),
      names({ af_bella: { gender: 'female' } }),
      names(42),
    ];

    // The download of an odd number of bytes drops the half sample and states the real sizes.
    const blob = koe.wavBlob([new Uint8Array([1, 2, 3])], 24000, 1);
    const w = new DataView(await blob.arrayBuffer());
    out.wavBlob = { size: blob.size, riff: w.getUint32(4, true), data: w.getUint32(40, true), rate: w.getUint32(24, true) };
    return out;
  });
  check('pcm: odd byte boundaries give back every sample exactly', parts.pcm.frames === 4000 &&
    parts.pcm.first > 0 && parts.pcm.maxErr < 1e-4 && parts.pcm.after === 0, JSON.stringify(parts.pcm));
  check('pcm: chunks gathered into few buffers', parts.pcm.buffers >= 1 && parts.pcm.buffers <= 4,
    parts.pcm.buffers);
  check('wav: header read a byte at a time, extra chunk skipped', parts.wav.configured === '22050/2' &&
    parts.wav.payload === '9,8,7,6,5', JSON.stringify(parts.wav));
  check('wav: a stream that is not WAV is refused', /RIFF/.test(parts.wavBad), parts.wavBad);
  check('voices: list of names', parts.voices[0] ===
    'af_heart|American English|female bm_george|British English|male', parts.voices[0]);
  check('voices: objects under "voices"', parts.voices[1] === 'x1|British English|female', parts.voices[1]);
  check('voices: objects under "data" with id', parts.voices[2] === 'ef_dora|Spanish|female', parts.voices[2]);
  check('voices: name → info map', parts.voices[3] === 'af_bella|American English|female', parts.voices[3]);
  check('voices: nonsense gives no voices', parts.voices[4] === '', parts.voices[4]);
  check('download: WAV sizes exact, odd byte dropped', JSON.stringify(parts.wavBlob) ===
    JSON.stringify({ size: 46, riff: 38, data: 2, rate: 24000 }), JSON.stringify(parts.wavBlob));

  // Every control is found by its label: what a screen reader announces.
  for (const label of ['Text', 'Voice', 'Speed', 'Format']) {
    check(`control labelled "${label}"`, (await page.getByLabel(label, { exact: false }).count()) >= 1);
  }
  check('progress goes to a status live region', (await page.locator('#status[role=status]').count()) === 1);
  check('errors go to an alert live region', (await page.getByRole('alert').count()) === 1);

  // Keyboard only: type the text, Tab to Speak, press Enter.
  const text = 'Hello from the browser test. Koe streams this sentence while it speaks.';
  await page.getByLabel('Text').fill(text);
  await page.getByLabel('Text').focus();
  let onSpeak = false;
  for (let i = 0; i < 12 && !onSpeak; i++) {
    await page.keyboard.press('Tab');
    onSpeak = await page.evaluate(() => document.activeElement && document.activeElement.id === 'speak');
  }
  check('Speak is reachable with Tab', onSpeak);
  const ring = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  check('keyboard focus is visible', ring.style !== 'none' && ring.width >= 2, JSON.stringify(ring));
  await page.keyboard.press('Enter');

  // Audio arrives and Web Audio plays it while the stream is still open or just after.
  await page.waitForFunction(
    () => Number(document.body.dataset.bytes) > 0 && Number(document.body.dataset.buffersScheduled) >= 1 ||
      document.body.dataset.state === 'error',
    null, { timeout: LIMIT });
  let d = await data(page);
  check('no API error for a plain request', d.state !== 'error', d.error);
  check('audio bytes arrived', Number(d.bytes) > 0, d.bytes);
  check('an AudioBuffer was scheduled', Number(d.buffersScheduled) >= 1, d.buffersScheduled);
  check('TTFA measured', Number(d.ttfaMs) > 0, d.ttfaMs);
  await page.waitForFunction(() => document.body.dataset.audioState === 'running', null, { timeout: LIMIT })
    .catch(() => {});
  d = await data(page);
  check('AudioContext is running', d.audioState === 'running', d.audioState);
  check('TTFA shown', /\d+ ms/.test(await page.locator('#stat-ttfa').textContent()));

  await page.waitForFunction(() => ['done', 'error', 'stopped'].includes(document.body.dataset.state), null,
    { timeout: LIMIT });
  d = await data(page);
  check('playback ran to the end', d.state === 'done', `${d.state} ${d.error || ''}`);
  check('audio duration > 0.3 s', Number(d.audioSeconds) > 0.3, d.audioSeconds);
  check('real-time factor shown', Number(d.rtf) > 0 && /^\d+\.\d+ .*real time/.test(await page.locator('#stat-rtf').textContent()),
    d.rtf);
  const link = page.getByRole('link', { name: /Download WAV/ });
  check('download offered', await link.isVisible());
  const wav = await page.evaluate(async () => {
    const a = document.getElementById('download');
    const bytes = new Uint8Array(await (await fetch(a.href)).arrayBuffer());
    const v = new DataView(bytes.buffer);
    const tag = (at) => String.fromCharCode(...bytes.subarray(at, at + 4));
    return { riff: tag(0), wave: tag(8), rate: v.getUint32(24, true), dataSize: v.getUint32(40, true),
      size: bytes.length, name: a.download };
  });
  check('download is a complete 24 kHz WAV of every byte received',
    wav.riff === 'RIFF' && wav.wave === 'WAVE' && wav.rate === 24000 &&
    wav.dataSize === Number(d.bytes) - (Number(d.bytes) % 2) && wav.size === 44 + wav.dataSize,
    JSON.stringify(wav) + ` bytes=${d.bytes}`);
  check('download has a .wav name', /\.wav$/.test(wav.name), wav.name);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
  await checkAccessibility(page, 'after speaking');

  // WAV streams too: its header is read, its samples scheduled as they come.
  await page.getByLabel('Format').selectOption('wav');
  await page.getByRole('button', { name: 'Speak' }).click();
  await page.waitForFunction(() => ['done', 'error', 'stopped'].includes(document.body.dataset.state), null,
    { timeout: LIMIT });
  d = await data(page);
  check('wav: played to the end', d.state === 'done' && Number(d.buffersScheduled) >= 1,
    `${d.state} ${d.error || ''} buffers=${d.buffersScheduled}`);
  check('wav: audio decoded from the stream', Number(d.audioSeconds) > 0.3, d.audioSeconds);
  check('wav: TTFA measured at the first sample byte', Number(d.ttfaMs) > 0, d.ttfaMs);

  // MP3 and AAC play through Media Source Extensions while they arrive, Opus and FLAC once
  // complete; every download keeps the bytes received.
  const mse = await page.evaluate(() => ['audio/mpeg', 'audio/aac'].map((t) => MediaSource.isTypeSupported(t)));
  check('this Chromium streams MP3 and AAC through Media Source Extensions', mse[0] && mse[1], mse.join(','));
  for (const format of ['mp3', 'aac', 'opus', 'flac']) {
    await page.getByLabel('Format').selectOption(format);
    await page.getByRole('button', { name: 'Speak' }).click();
    await page.waitForFunction(() => ['done', 'error', 'stopped'].includes(document.body.dataset.state), null,
      { timeout: LIMIT });
    d = await data(page);
    check(`${format}: played to the end`, d.state === 'done' && Number(d.buffersScheduled) >= 1,
      `${d.state} ${d.error || ''} buffers=${d.buffersScheduled}`);
    check(`${format}: duration known`, Number(d.audioSeconds) > 0.3, d.audioSeconds);
    const ext = format === 'opus' ? 'ogg' : format;
    check(`${format}: download is the ${ext} bytes received`, Number(d.downloadBytes) === Number(d.bytes) &&
      (await page.locator('#download').getAttribute('download')).endsWith(`.${ext}`),
      `${d.downloadBytes} vs ${d.bytes}`);
  }

  // Stop: a long text, stopped once audio flows. Checking that Stop is enabled and pressing it
  // happen in one task of the page, so the outcome cannot depend on how fast the audio came.
  await page.getByLabel('Format').selectOption('pcm');
  await page.getByLabel('Text').fill('This is a long text for the stop button. '.repeat(40));
  await page.getByRole('button', { name: 'Speak' }).click();
  await page.waitForFunction(() => Number(document.body.dataset.bytes) > 0 || document.body.dataset.state === 'error',
    null, { timeout: LIMIT });
  const stopped = await page.evaluate(() => {
    const stop = document.getElementById('stop');
    const enabled = !stop.disabled;
    if (enabled) stop.click();
    return { enabled, state: document.body.dataset.state, active: document.body.dataset.sourcesActive,
      disabledAfter: stop.disabled };
  });
  check('Stop is enabled while audio plays', stopped.enabled, JSON.stringify(stopped));
  check('Stop ends playback at once', stopped.state === 'stopped' && stopped.active === '0' && stopped.disabledAfter,
    JSON.stringify(stopped));

  // An API error is shown in the alert region with the server's own message.
  await page.getByLabel('Text').fill('Hello.');
  await page.evaluate(() => {
    const o = document.createElement('option');
    o.value = o.textContent = 'zz_no_such_voice';
    document.getElementById('voice').append(o);
  });
  await page.getByLabel('Voice').selectOption('zz_no_such_voice');
  await page.getByRole('button', { name: 'Speak' }).click();
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: LIMIT });
  const alert = (await page.getByRole('alert').textContent()) || '';
  check('unknown voice: error state', (await data(page)).state === 'error');
  check('unknown voice: the server\'s 4xx message is shown', /^The server answered 4\d\d[^:]*: \S/.test(alert), alert);
  await checkAccessibility(page, 'with an error shown');

  // Empty text is refused before any request, and said so.
  await page.getByLabel('Voice').selectOption(voices[0]);
  await page.getByLabel('Text').fill('   ');
  await page.getByRole('button', { name: 'Speak' }).click();
  check('empty text: asked for text', /Type some text/.test((await page.getByRole('alert').textContent()) || ''));

  check('no script errors in the page', pageErrors.length === 0, pageErrors.join(' | '));
  check('no request left koe\'s origin', foreign.length === 0, foreign.join(' '));
}

main().then(() => {
  if (fails) console.log(`${fails} check(s) failed`);
  else console.log('all web page checks passed');
  process.exit(fails ? 1 : 0);
}, (e) => {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
});
