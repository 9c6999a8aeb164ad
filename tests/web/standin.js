// A stand-in for `koe serve`, for working on the web page before (or without) the real server:
// serves web/ and answers the two API calls the page makes with a sine tone (compressed formats
// through ffmpeg). Never used by the committed test unless KOE_WEB_STANDIN=1 is set (docs/WEB.md).
//
//   node tests/web/standin.js [port]     prints the port it listens on, then serves until killed
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const WEB = path.join(__dirname, '..', '..', 'web');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8' };
const RATE = 24000;
// Compressed formats: Content-Type, then ffmpeg's output options.
const ENCODE = {
  mp3: ['audio/mpeg', '-f', 'mp3', '-b:a', '64k'],
  aac: ['audio/aac', '-c:a', 'aac', '-b:a', '64k', '-f', 'adts'],
  opus: ['audio/ogg', '-c:a', 'libopus', '-b:a', '32k', '-f', 'ogg'],
  flac: ['audio/flac', '-f', 'flac'],
};
const CSP = "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self' blob:; " +
  "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
// Mixed shapes on purpose: the page must accept bare names and objects.
const VOICES = [
  { name: 'af_heart', language: 'en-us', gender: 'female' },
  { name: 'am_adam', language: 'en-us', gender: 'male' },
  'bf_emma',
  'ff_siwis',
];

function apiError(res, status, message, param) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ error: { message, type: 'invalid_request_error', param: param || null, code: null } }));
}

function wavHeader(rate) {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0); h.writeUInt32LE(0xffffffff, 4); h.write('WAVE', 8);
  h.write('fmt ', 12); h.writeUInt32LE(16, 16); h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24); h.writeUInt32LE(rate * 2, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34);
  h.write('data', 36); h.writeUInt32LE(0xffffffff, 40);
  return h;
}

function speech(req, res, body) {
  let q;
  try { q = JSON.parse(body); } catch (e) { return apiError(res, 400, 'the body is not valid JSON'); }
  const input = q.input ?? q.text;
  if (typeof input !== 'string' || !input.trim()) return apiError(res, 400, 'input is empty', 'input');
  const names = VOICES.map((v) => (typeof v === 'string' ? v : v.name));
  if (!names.includes(q.voice)) return apiError(res, 400, `unknown voice '${q.voice}'`, 'voice');
  const format = q.response_format || 'mp3';
  if (!['pcm', 'wav'].includes(format) && !ENCODE[format]) {
    return apiError(res, 400, `the stand-in cannot make ${format}`, 'response_format');
  }
  // 60 ms of tone per character, so a long text gives a long stream.
  const total = Math.max(RATE, Math.round(input.length * 0.06 * RATE / (q.speed || 1)));
  const pcm = Buffer.alloc(total * 2);
  for (let i = 0; i < total; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin(2 * Math.PI * 440 * i / RATE)), i * 2);
  if (ENCODE[format]) {
    // ffmpeg (Debian's) encodes the tone; its output is streamed as it comes.
    const [type, ...args] = ENCODE[format];
    const enc = spawn('ffmpeg', ['-v', 'error', '-f', 's16le', '-ar', String(RATE), '-ac', '1', '-i', '-',
      ...args, '-'], { stdio: ['pipe', 'pipe', 'inherit'] });
    res.writeHead(200, { 'Content-Type': type });
    enc.stdout.pipe(res);
    res.on('close', () => enc.kill());
    enc.stdin.end(pcm);
    return;
  }
  res.writeHead(200, { 'Content-Type': format === 'wav' ? 'audio/wav' : 'audio/pcm' });
  if (format === 'wav') res.write(wavHeader(RATE));
  // Odd chunk sizes split samples across chunks, as real networks do.
  let at = 0;
  const step = () => {
    if (res.destroyed) return;
    if (at >= pcm.length) return res.end();
    const n = at === 0 ? 4801 : 24001;
    res.write(pcm.subarray(at, at + n));
    at += n;
    setTimeout(step, 20);
  };
  step();
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (req.method === 'GET' && url.pathname === '/v1/audio/voices') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return res.end(JSON.stringify({ voices: VOICES }));
  }
  if (req.method === 'POST' && url.pathname === '/v1/audio/speech') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => speech(req, res, body));
    return;
  }
  const name = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
  if (req.method === 'GET' && /^[a-z0-9_-]+\.(html|js|css)$/.test(name)) {
    fs.readFile(path.join(WEB, name), (err, data) => {
      if (err) return apiError(res, 404, 'not found');
      // The headers docs/WEB.md asks koe to send with the page, so the page is tested under them.
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(name)], 'Cache-Control': 'no-cache',
        'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': CSP });
      res.end(data);
    });
    return;
  }
  apiError(res, 404, `no route for ${req.method} ${url.pathname}`);
});
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`);
});
