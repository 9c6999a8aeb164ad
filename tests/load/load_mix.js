// A bounded mixed load on a running koe server, loopback only; it stops by itself.
//   node load_mix.js --port P --pid PID [--connections 64] [--seconds 60] [--warmup 10]
//                    [--rss-tolerance 5|off]
// C connections loop until the time is up, each sending one request per connection, mixed:
//   valid (pcm/wav/mp3, streamed or not, short and longer texts): checked complete and decodable
//   invalid (malformed JSON, unknown voice, bad speed, empty input, 404, 405): must be 4xx
//   vanishing (a long text; the client reads a little audio and destroys the socket)
// First the same mix runs --warmup seconds, then the server is let go idle and its RSS read; after
// the run it is let go idle again and RSS read once more. Passes (exit 0) when: no connection
// error or 5xx other than 503 with Retry-After, every valid answer complete and decodable, the
// process alive, RSS after the run no more than 5% above RSS after warm-up (less is fine: the
// allocator gave memory back). Prints a JSON summary.
"use strict";
const http = require("http");
const { parseMetrics } = require("./metrics");
const fs = require("fs");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const port = Number(args.port), pid = Number(args.pid);
const conns = Number(args.connections || 64), seconds = Number(args.seconds || 60);
const warmup = Number(args.warmup || 10);
// --rss-tolerance off: for sanitizer builds, whose allocator quarantine grows RSS by design
const rssTol = args["rss-tolerance"] === "off" ? Infinity : Number(args["rss-tolerance"] || 5) / 100;
if (!port || !pid) { console.error("usage: load_mix.js --port P --pid PID [--connections N] [--seconds S] [--warmup W]"); process.exit(2); }

const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };

const words = "the quick brown fox jumps over a lazy dog while seven bright stars look down on 42 quiet towns".split(" ");
let seed = 12345;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return (seed >>> 16) % n; };
const sentence = (k) => Array.from({ length: k }, () => words[rnd(words.length)]).join(" ") + ". ";
const story = Array.from({ length: 200 }, (_, i) => `Sentence ${i} of a story that nobody hears to the end.`).join(" ");

function newStats() {
    return { valid: 0, valid_ok: 0, vanish_tries: 0, vanish_errors: [], invalid: 0, invalid_4xx: 0, vanished: 0, busy_503: 0, bad: 0, errors: [], audio_bytes: 0 };
}
let st = newStats();
const fail = (what) => { st.bad++; if (st.errors.length < 20) st.errors.push(what); };

function request(method, path, body, onResponse, onError) {
    const req = http.request({ host: "127.0.0.1", port, method, path, agent: false,
        headers: body ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } : {} });
    req.on("response", onResponse);
    req.on("error", onError);
    req.end(body || undefined);
    return req;
}

// A wav header: RIFF/WAVE, PCM, mono, 16 bits, 24 kHz, then data with an even byte count.
function wavOk(b, streamed) {
    if (b.length < 44 || b.toString("ascii", 0, 4) !== "RIFF" || b.toString("ascii", 8, 12) !== "WAVE") return false;
    if (b.readUInt16LE(20) !== 1 || b.readUInt16LE(22) !== 1 || b.readUInt32LE(24) !== 24000 || b.readUInt16LE(34) !== 16) return false;
    if (b.toString("ascii", 36, 40) !== "data") return false;
    const audio = b.length - 44;
    if (audio <= 0 || audio % 2) return false;
    return streamed || b.readUInt32LE(40) === audio;
}
// mp3: an ID3 tag or a frame sync, then more than a frame's worth.
const mp3Ok = (b) => b.length > 400 && (b.toString("ascii", 0, 3) === "ID3" || (b[0] === 0xff && (b[1] & 0xe0) === 0xe0));

function valid(done) {
    const fmt = ["pcm", "wav", "mp3"][rnd(3)], stream = rnd(4) !== 0;
    const input = sentence(4 + rnd(12)) + (rnd(3) === 0 ? sentence(20) : "");
    const body = JSON.stringify({ model: "kokoro", input, voice: ["af_heart", "am_adam", "alloy"][rnd(3)], response_format: fmt, stream });
    st.valid++;
    request("POST", "/v1/audio/speech", body, (res) => {
        const parts = [];
        res.on("data", (d) => parts.push(d));
        res.on("end", () => {
            const b = Buffer.concat(parts);
            if (res.statusCode === 503 && res.headers["retry-after"]) st.busy_503++;
            else if (res.statusCode !== 200) fail(`valid ${fmt}: status ${res.statusCode} ${b.toString().slice(0, 120)}`);
            else if (fmt === "pcm" ? b.length > 0 && b.length % 2 === 0 : fmt === "wav" ? wavOk(b, stream) : mp3Ok(b)) { st.valid_ok++; st.audio_bytes += b.length; }
            else fail(`valid ${fmt} stream=${stream}: undecodable (${b.length} bytes)`);
            done();
        });
        res.on("aborted", () => { fail(`valid ${fmt}: stream cut`); done(); });
    }, (e) => { fail(`valid ${fmt}: ${e.code || e.message}`); done(); });
}

const invalids = [
    ["POST", "/v1/audio/speech", '{"input": "x",'],
    ["POST", "/v1/audio/speech", '{"input":"hi","voice":"af_bela"}'],
    ["POST", "/v1/audio/speech", '{"input":"hi","speed":9}'],
    ["POST", "/v1/audio/speech", '{"input":"   "}'],
    ["POST", "/v1/audio/speech", '{"input":"hi","response_format":"ogg_vorbis"}'],
    ["POST", "/v1/audio/speech", '[1,2,3]'],
    ["GET", "/v1/audio/speech", null],
    ["GET", "/no/such/path", null],
];
function invalid(done) {
    const [method, path, body] = invalids[rnd(invalids.length)];
    st.invalid++;
    request(method, path, body, (res) => {
        res.resume();
        res.on("end", () => {
            if (res.statusCode >= 400 && res.statusCode < 500) st.invalid_4xx++;
            else fail(`invalid ${method} ${path} ${body}: status ${res.statusCode}`);
            done();
        });
    }, (e) => { fail(`invalid ${method} ${path}: ${e.code || e.message}`); done(); });
}

function vanish(done) {
    const body = JSON.stringify({ input: story, response_format: rnd(2) ? "pcm" : "wav" });
    let got = 0, finished = false;
    st.vanish_tries++;
    const end = () => { if (!finished) { finished = true; done(); } };
    const req = request("POST", "/v1/audio/speech", body, (res) => {
        if (res.statusCode === 503) { st.busy_503++; res.resume(); res.on("end", end); return; }
        if (res.statusCode !== 200) { fail(`vanish: status ${res.statusCode}`); res.resume(); res.on("end", end); return; }
        res.on("data", (d) => {
            got += d.length;
            if (got >= 4096 && !finished) { st.vanished++; req.destroy(); end(); }
        });
        res.on("end", () => { fail("vanish: a 200-sentence story ended before 4 kB"); end(); });
    }, (e) => { if (!finished && st.vanish_errors.length < 5) st.vanish_errors.push(e.code || e.message); end(); });
}

function phase(secs) {
    return new Promise((resolve) => {
        const stopAt = Date.now() + secs * 1000;
        let running = conns;
        const loop = () => {
            if (Date.now() >= stopAt) { if (--running === 0) resolve(); return; }
            const k = rnd(20);
            (k < 12 ? valid : k < 17 ? invalid : vanish)(loop);
        };
        for (let i = 0; i < conns; i++) loop();
    });
}

function metrics() {
    return new Promise((resolve) => {
        request("GET", "/metrics", null, (res) => {
            let t = "";
            res.on("data", (d) => (t += d));
            res.on("end", () => resolve(parseMetrics(t)));
        }, () => resolve(null));
    });
}
// Idle: no job running or waiting, no stream open and no request in flight but this scrape, which
// the server answers only after giving the last speech's freed memory back (polled, never a fixed
// sleep): RSS read then is the idle RSS, not a moment before the trim.
async function idle() {
    for (let i = 0; i < 3000; i++) {
        const m = await metrics();
        if (m && m.koe_jobs_running === 0 && m.koe_queue_depth === 0 && m.koe_active_streams === 0 &&
            m.koe_requests_in_flight === 1) return m;
        await new Promise((r) => setTimeout(r, 20));
    }
    return null;
}

(async () => {
    const rssStart = rss();
    await phase(warmup);
    const warm = st;
    st = newStats();
    await idle();
    const rssWarm = rss();
    const t0 = Date.now();
    await phase(seconds);
    const elapsed = (Date.now() - t0) / 1000;
    const m = await idle();
    const rssAfter = rss();
    const drift = (rssAfter - rssWarm) / rssWarm;
    const codes = {};
    for (const k of Object.keys(m || {})) { const c = /^koe_requests_total\{code="(\d+)"\}$/.exec(k); if (c) codes[c[1]] = m[k]; }
    const server5xx = Object.entries(codes).filter(([c]) => c >= 500 && c !== "503").reduce((a, [, v]) => a + v, 0);
    const summary = {
        connections: conns, seconds: Number(elapsed.toFixed(1)), warmup_seconds: warmup,
        requests: st.valid + st.invalid + st.vanished, ...st, warmup_bad: warm.bad,
        server_status_counts: codes, server_5xx_not_503: server5xx,
        jobs: m && { done: m['koe_jobs_total{outcome="done"}'], cancelled: m['koe_jobs_total{outcome="cancelled"}'], failed: m['koe_jobs_total{outcome="failed"}'], rejected: m['koe_jobs_total{outcome="rejected"}'] },
        rss_kb: { start: rssStart, after_warmup: rssWarm, after_run: rssAfter, drift_percent: Number((100 * drift).toFixed(2)), tolerance_percent: rssTol === Infinity ? "off" : 100 * rssTol },
        alive: alive(), idle_after: !!m,
    };
    const ok = summary.alive && summary.idle_after && st.bad === 0 && warm.bad === 0 && server5xx === 0 &&
        st.valid_ok > 0 && st.invalid_4xx > 0 && st.vanished > 0 && drift <= rssTol &&
        (!m || !m['koe_jobs_total{outcome="failed"}']);
    console.log(JSON.stringify(summary, null, 1));
    console.log(ok ? "load: PASS" : "load: FAIL");
    process.exit(ok ? 0 : 1);
})();
