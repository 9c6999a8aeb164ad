// Soak: steady mixed load below capacity on a running koe server for a long time, loopback only;
// it stops by itself. Measures whether the server stays the same over the run.
//   node soak.js --port P --pid PID [--seconds 1200] [--window 300] [--warmup 60] [--clients 2]
//                [--pause-ms 1000] [--tolerance 5] [--rss-tolerance 5] [--log FILE]
// Each client speaks one request at a time, then pauses (--pause-ms, varied ±50% by a fixed-seed
// generator): a steady load, not a flood. The mix, from a fixed-seed generator per client:
//   9 in 12 streamed pcm, 1 in 12 streamed wav: time to first audio (TTFA: request sent → first audio
//        byte), real-time factor (RTF: whole response time / audio length) and underruns of a
//        simulated player that starts at the first audio byte and plays 24 kHz audio in real time
//        (a chunk arriving more than 5 ms after the audio before it has run out is an underrun)
//   1 in 12 unstreamed mp3: checked decodable (ID3 or frame sync)
//   1 in 12 invalid (malformed JSON, unknown voice, bad speed, blank input): must be 4xx
// in a fixed cycle, the valid ones going through 8 sentences of 50..120 characters and 4 voices.
// Run the server with --audio-cache-mb 0: with the cache, a repeated request is a replay, and
// what is measured would be the cache filling up instead of the synthesis.
// After --warmup seconds (not measured) the run lasts --seconds; the first and the last --window
// seconds are compared: TTFA p50 and p95 and RTF p50 over the streamed pcm requests started in
// each window. The server's RSS is sampled every 5 s. Passes (exit 0) when: every valid answer is
// 200 and complete, every invalid one 4xx, no connection error, no 503 (the load is meant to be
// below capacity), no failed job and no 5xx in the server's /metrics, zero underruns, TTFA
// p50/p95 and RTF p50 of the last window within --tolerance % of the first (either way), the
// largest RSS of the last window at most --rss-tolerance % above the largest of the first, and
// the process alive and idle afterwards. Prints a JSON summary with a per-minute series.
"use strict";
const http = require("http");
const { parseMetrics } = require("./metrics");
const fs = require("fs");
const { performance } = require("perf_hooks");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const port = Number(args.port), pid = Number(args.pid);
const seconds = Number(args.seconds || 1200), window = Number(args.window || 300);
const warmup = Number(args.warmup || 60), clients = Number(args.clients || 2);
const pauseMs = Number(args["pause-ms"] || 1000);
const tol = Number(args.tolerance || 5) / 100, rssTol = Number(args["rss-tolerance"] || 5) / 100;
if (!port || !pid || 2 * window > seconds) {
    console.error("usage: soak.js --port P --pid PID [--seconds S] [--window W (2W <= S)] [--warmup W] [--clients N] [--pause-ms MS]");
    process.exit(2);
}
const logFile = args.log ? fs.openSync(args.log, "w") : null;

const rssKb = () => { try { return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))[1]); } catch { return -1; } };
const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const TEXTS = [
    "Good morning. The kettle is on and the post has come.",
    "Turn left at the second light, then keep going until you see the bakery on the corner.",
    "Your meeting with the design team starts in ten minutes, in the small room on the third floor.",
    "It rained all night, so the path by the river will be muddy; take the boots by the door.",
    "The library closes at six on Saturdays, but the reading room stays open until eight for members.",
    "Three parcels arrived today: one from your sister, one from the bookshop, and one with no name on it at all.",
    "If the bus is late again, call the office and tell them you will join the call from home instead.",
    "She folded the map, looked once more at the hills, and decided that the long way round was the better one after all.",
];
const VOICES = ["af_heart", "am_adam", "bf_emma", "af_bella"];
const INVALID = [
    '{"input": "hello",',
    '{"input":"hello","voice":"af_nobody"}',
    '{"input":"hello","speed":9}',
    '{"input":"   "}',
];

function lcg(seed) {
    let s = seed >>> 0;
    return (n) => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return (s >>> 16) % n; };
}

const records = []; // measured requests: {t (s since measuring began), kind, ok, ttfa, rtf, underruns, gap}
const warm = { n: 0, bad: 0 }; // the warm-up's requests, not measured but checked
const errors = [];
let measuring = false, t0 = 0;
const fail = (r, what) => { r.ok = false; if (errors.length < 30) errors.push(what); };

function speak(kind, body) {
    return new Promise((resolve) => {
        const r = { t: (performance.now() - t0) / 1000, measured: measuring, kind, ok: true };
        let first = -1, gaps = 0, audio = 0, under = 0, got = 0, settled = false;
        const parts = [];
        const sent = performance.now();
        const finish = () => { if (!settled) { settled = true; resolve(r); } };
        const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/v1/audio/speech", agent: false,
            headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } });
        req.on("response", (res) => {
            r.status = res.statusCode;
            const streamedAudio = kind === "pcm" || kind === "wav";
            res.on("data", (d) => {
                const t = performance.now();
                if (kind === "mp3" || res.statusCode !== 200) { parts.push(d); got += d.length; return; }
                const skip = kind === "wav" ? Math.max(0, Math.min(d.length, 44 - got)) : 0;
                if (kind === "wav" && got < 44) parts.push(d.subarray(0, skip));
                got += d.length;
                const bytes = d.length - skip;
                if (!streamedAudio || bytes <= 0) return;
                if (first < 0) first = t;
                const before = audio;
                audio += bytes / 48000; // 24 kHz, 16-bit mono
                const played = (t - first - gaps) / 1000;
                if (played > before + 0.005) { under++; gaps += (played - before) * 1000; }
            });
            res.on("end", () => {
                const end = performance.now();
                if (kind === "invalid") {
                    if (!(res.statusCode >= 400 && res.statusCode < 500)) fail(r, `invalid ${body}: status ${res.statusCode}`);
                    return finish();
                }
                if (res.statusCode !== 200) { fail(r, `${kind}: status ${res.statusCode} ${Buffer.concat(parts).toString().slice(0, 120)}`); return finish(); }
                if (kind === "mp3") {
                    const b = Buffer.concat(parts);
                    if (!(b.length > 400 && (b.toString("ascii", 0, 3) === "ID3" || (b[0] === 0xff && (b[1] & 0xe0) === 0xe0)))) fail(r, `mp3: undecodable (${b.length} bytes)`);
                    r.total = end - sent;
                    return finish();
                }
                const head = Buffer.concat(parts);
                if (kind === "wav" && (head.length < 44 || head.toString("ascii", 0, 4) !== "RIFF" || head.readUInt32LE(24) !== 24000))
                    fail(r, "wav: bad header");
                const audioBytes = got - (kind === "wav" ? 44 : 0);
                if (audioBytes <= 0 || audioBytes % 2) fail(r, `${kind}: ${audioBytes} audio bytes`);
                r.ttfa = first - sent;
                r.total = end - sent;
                r.audio = audio;
                r.rtf = audio > 0 ? r.total / 1000 / audio : null;
                r.underruns = under;
                r.gap = gaps;
                finish();
            });
            res.on("aborted", () => { fail(r, `${kind}: stream cut`); finish(); });
        });
        req.on("error", (e) => { fail(r, `${kind}: ${e.code || e.message}`); finish(); });
        req.end(body);
    });
}

// A fixed cycle rather than random draws, so that every window holds the same mix and the
// windows' percentiles differ by what the server does, not by which texts were drawn.
const PATTERN = ["pcm", "pcm", "pcm", "invalid", "pcm", "pcm", "wav", "pcm", "pcm", "pcm", "mp3", "pcm"];
async function client(id, stopAt) {
    const rnd = lcg(1000 + id); // the pauses only
    let n = 0, m = 3 * id; // clients start at different texts
    while (performance.now() < stopAt) {
        const kind = PATTERN[n++ % PATTERN.length];
        let body;
        if (kind === "invalid") body = INVALID[(n / PATTERN.length | 0) % INVALID.length];
        else {
            body = JSON.stringify({ model: "kokoro", input: TEXTS[m % TEXTS.length],
                voice: VOICES[(m / TEXTS.length | 0) % VOICES.length], response_format: kind, stream: kind !== "mp3" });
            m++;
        }
        const r = await speak(kind, body);
        r.client = id;
        if (r.measured) records.push(r);
        else { warm.n++; if (!r.ok) warm.bad++; }
        if (logFile && r.measured) fs.writeSync(logFile, JSON.stringify(r) + "\n");
        await sleep(pauseMs * (0.5 + rnd(1001) / 1000));
    }
}

function metrics() {
    return new Promise((resolve) => {
        const req = http.request({ host: "127.0.0.1", port, method: "GET", path: "/metrics", agent: false }, (res) => {
            let t = "";
            res.on("data", (d) => (t += d));
            res.on("end", () => resolve(parseMetrics(t)));
        });
        req.on("error", () => resolve(null));
        req.end();
    });
}
async function idle() {
    for (let i = 0; i < 3000; i++) {
        const m = await metrics();
        if (m && m.koe_jobs_running === 0 && m.koe_queue_depth === 0 && m.koe_active_streams === 0 &&
            m.koe_requests_in_flight === 1) return m;
        await sleep(20);
    }
    return null;
}

const pct = (xs, p) => {
    if (!xs.length) return null;
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
const r1 = (x) => (x == null ? null : Number(x.toFixed(1)));
const r3 = (x) => (x == null ? null : Number(x.toFixed(3)));

// The measured streams (pcm, answered right) of [lo, hi): what the window figures are over.
const pcmIn = (lo, hi) => records.filter((r) => r.t >= lo && r.t < hi && r.kind === "pcm" && r.ok);

function windowStats(lo, hi) {
    const rs = records.filter((r) => r.t >= lo && r.t < hi);
    const pcm = pcmIn(lo, hi);
    const ttfa = pcm.map((r) => r.ttfa), rtf = pcm.map((r) => r.rtf);
    const rss = rssSamples.filter((s) => s.t >= lo && s.t < hi).map((s) => s.kb);
    return { from_s: lo, to_s: hi, requests: rs.length, pcm_streams: pcm.length,
        ttfa_ms: { p50: r1(pct(ttfa, 50)), p95: r1(pct(ttfa, 95)), max: r1(pct(ttfa, 100)) },
        rtf: { p50: r3(pct(rtf, 50)), p95: r3(pct(rtf, 95)) },
        underruns: rs.reduce((a, r) => a + (r.underruns || 0), 0),
        rss_mb: rss.length ? { min: r1(Math.min(...rss) / 1024), max: r1(Math.max(...rss) / 1024) } : null };
}

const rssSamples = [];
(async () => {
    if (!alive()) { console.error(`soak: no process ${pid}`); process.exit(2); }
    const rssStart = rssKb();
    t0 = performance.now();
    await Promise.all(Array.from({ length: clients }, (_, i) => client(i, t0 + warmup * 1000)));
    await idle();
    const rssWarm = rssKb();
    t0 = performance.now();
    measuring = true;
    const sampler = setInterval(() => rssSamples.push({ t: (performance.now() - t0) / 1000, kb: rssKb() }), 5000);
    rssSamples.push({ t: 0, kb: rssWarm });
    const progress = setInterval(() => {
        const el = (performance.now() - t0) / 1000;
        const w = windowStats(Math.max(0, el - 60), el);
        console.error(`soak: ${el.toFixed(0)} s, ${records.length} requests, last minute TTFA p50 ${w.ttfa_ms.p50} ms, RTF p50 ${w.rtf.p50}, underruns ${w.underruns}, RSS ${(rssKb() / 1024).toFixed(1)} MB, errors ${errors.length}`);
    }, 60000);
    await Promise.all(Array.from({ length: clients }, (_, i) => client(i, t0 + seconds * 1000)));
    clearInterval(sampler);
    clearInterval(progress);
    const elapsed = (performance.now() - t0) / 1000;
    const m = await idle();
    const rssAfter = rssKb();

    const first = windowStats(0, window), last = windowStats(seconds - window, seconds + 1e9);
    const drift = (a, b) => (a && b != null ? Number((100 * (b - a) / a).toFixed(2)) : null);
    const drifts = { ttfa_p50: drift(first.ttfa_ms.p50, last.ttfa_ms.p50), ttfa_p95: drift(first.ttfa_ms.p95, last.ttfa_ms.p95),
        rtf_p50: drift(first.rtf.p50, last.rtf.p50), rss_max: drift(first.rss_mb && first.rss_mb.max, last.rss_mb && last.rss_mb.max) };
    // How far the drift itself can move by chance: a bootstrap (2000 resamples of each window's
    // streams, fixed seed) gives its 95 % interval. Information only; the verdict uses the drift.
    const interval = (key, p) => {
        const a = pcmIn(first.from_s, first.to_s).map((r) => r[key]), b = pcmIn(last.from_s, last.to_s).map((r) => r[key]);
        if (!a.length || !b.length) return null;
        const rnd = lcg(12345), pick = (xs) => xs.map(() => xs[rnd(xs.length)]);
        const ds = [];
        for (let i = 0; i < 2000; i++) ds.push(100 * (pct(pick(b), p) / pct(pick(a), p) - 1));
        ds.sort((x, y) => x - y);
        return [Number(ds[50].toFixed(1)), Number(ds[1949].toFixed(1))];
    };
    const driftCi = { ttfa_p50: interval("ttfa", 50), ttfa_p95: interval("ttfa", 95), rtf_p50: interval("rtf", 50) };
    const minutes = [];
    for (let lo = 0; lo < seconds; lo += 60) {
        const w = windowStats(lo, lo + 60);
        minutes.push([lo / 60, w.pcm_streams, w.ttfa_ms.p50, w.ttfa_ms.p95, w.rtf.p50, w.underruns, w.rss_mb && w.rss_mb.max]);
    }
    const codes = {};
    for (const k of Object.keys(m || {})) { const c = /^koe_requests_total\{code="(\d+)"\}$/.exec(k); if (c) codes[c[1]] = m[k]; }
    const server5xx = Object.entries(codes).filter(([c]) => c >= 500).reduce((a, [, v]) => a + v, 0);
    const kinds = {};
    for (const r of records) { const k = (kinds[r.kind] ||= { n: 0, ok: 0 }); k.n++; if (r.ok) k.ok++; }
    const underruns = records.reduce((a, r) => a + (r.underruns || 0), 0);
    const failedJobs = m ? m['koe_jobs_total{outcome="failed"}'] || 0 : null;
    const summary = {
        clients, pause_ms: pauseMs, warmup_seconds: warmup, seconds: r1(elapsed), window_seconds: window,
        requests: records.length, warmup_requests: warm.n, warmup_bad: warm.bad, kinds, bad: records.filter((r) => !r.ok).length, errors,
        underruns, gap_ms: r1(records.reduce((a, r) => a + (r.gap || 0), 0)),
        first_window: first, last_window: last, drift_percent: drifts, drift_ci95_percent: driftCi, tolerance_percent: 100 * tol,
        rss_kb: { start: rssStart, after_warmup: rssWarm, after_run: rssAfter }, rss_tolerance_percent: 100 * rssTol,
        per_minute: { columns: ["minute", "pcm streams", "TTFA p50 ms", "TTFA p95 ms", "RTF p50", "underruns", "RSS max MB"], rows: minutes },
        server_status_counts: codes, server_5xx: server5xx,
        jobs: m && { done: m['koe_jobs_total{outcome="done"}'], cancelled: m['koe_jobs_total{outcome="cancelled"}'], failed: failedJobs },
        // the server's own count of segments ready after the audio before them had played out
        // (warm-up included): its view of the underruns counted above
        server_late_segments: m ? m.koe_late_segments_total ?? null : null,
        server_late_ms: m && m.koe_late_seconds_total != null ? r1(1000 * m.koe_late_seconds_total) : null,
        alive: alive(), idle_after: !!m,
    };
    const within = (d, t) => d != null && Math.abs(d) < 100 * t;
    const checks = {
        all_answers_right: summary.bad === 0 && warm.bad === 0 && records.length > 0,
        no_underrun: underruns === 0,
        no_server_5xx_or_failed_job: server5xx === 0 && failedJobs === 0,
        ttfa_p50_steady: within(drifts.ttfa_p50, tol), ttfa_p95_steady: within(drifts.ttfa_p95, tol),
        rtf_p50_steady: within(drifts.rtf_p50, tol),
        rss_flat: drifts.rss_max != null && drifts.rss_max <= 100 * rssTol,
        alive_and_idle: summary.alive && summary.idle_after,
    };
    summary.checks = checks;
    const ok = Object.values(checks).every(Boolean);
    console.log(JSON.stringify(summary, null, 1));
    console.log(ok ? "soak: PASS" : "soak: FAIL");
    process.exit(ok ? 0 : 1);
})();
