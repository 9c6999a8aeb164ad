// A stand-in for the model host, for tests/test_download.sh: serves one generated file under
// several behaviours, chosen by the first path component. Prints its port, then serves until
// killed. Logs each request (method, path, range) to stderr so the test can see resumes.
'use strict';
const http = require('http');
const crypto = require('crypto');

const size = 3 * 1024 * 1024 + 17;
const body = Buffer.alloc(size);
let x = 12345;
for (let i = 0; i < size; i++) { x = (x * 1103515245 + 12345) >>> 0; body[i] = x >>> 24; }
const sha = crypto.createHash('sha256').update(body).digest('hex');
const dieOnceDone = new Set();

function lfsHeaders(mode) {
  const h = { 'X-Linked-Size': String(mode === 'short' ? size + 1000 : size) };
  h['X-Linked-Etag'] = '"' + (mode === 'badsum' ? sha.replace(/^./, sha[0] === '0' ? '1' : '0') : sha) + '"';
  return h;
}

const server = http.createServer((req, res) => {
  const parts = req.url.split('/').filter(Boolean);
  const mode = parts[0], name = parts[1];
  process.stderr.write(`${req.method} ${req.url} range=${req.headers.range || '-'}\n`);
  if (!name) { res.writeHead(404); return res.end(); }
  if (name === 'config.json') {
    // A small file without a SHA-256 ETag, like a regular git file on the real host.
    const cfg = Buffer.from('{"test": true}\n');
    res.writeHead(200, { 'Content-Length': cfg.length, ETag: '"0123456789abcdef0123456789abcdef01234567"' });
    return res.end(req.method === 'HEAD' ? undefined : cfg);
  }
  if (mode === 'redirect') {
    res.writeHead(302, Object.assign({ Location: `/plain/${name}` }, lfsHeaders('good')));
    return res.end();
  }
  let start = 0;
  const m = /^bytes=(\d+)-$/.exec(req.headers.range || '');
  const honourRange = mode !== 'norange' && m;
  if (honourRange) start = Number(m[1]);
  const extra = mode === 'plain' ? {} : lfsHeaders(mode);
  const chunk = body.subarray(start);
  const headers = Object.assign({ 'Content-Length': chunk.length, 'Accept-Ranges': 'bytes' }, extra);
  if (honourRange) headers['Content-Range'] = `bytes ${start}-${size - 1}/${size}`;
  res.writeHead(honourRange ? 206 : 200, headers);
  if (req.method === 'HEAD') return res.end();
  if (mode === 'dieonce' && !dieOnceDone.has(name)) {
    // Half the file, then the connection drops, as when a server dies mid-transfer.
    dieOnceDone.add(name);
    res.write(chunk.subarray(0, Math.floor(chunk.length / 2)), () => req.socket.destroy());
    return;
  }
  res.end(chunk);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port} ${sha}\n`);
});
