// koe's web page: asks the server for speech and plays it while it is still arriving.
// Plain script, no build step and no external resource: it is embedded into the koe binary as is.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    form: $('speak-form'),
    text: $('text'),
    voice: $('voice'),
    voiceHint: $('voice-hint'),
    speed: $('speed'),
    speedValue: $('speed-value'),
    format: $('format'),
    keyBox: $('key-box'),
    key: $('api-key'),
    formatHint: $('format-hint'),
    speak: $('speak'),
    stop: $('stop'),
    download: $('download'),
    status: $('status'),
    error: $('error'),
    ttfa: $('stat-ttfa'),
    rtf: $('stat-rtf'),
    audio: $('stat-audio'),
    bytes: $('stat-bytes'),
    gaps: $('stat-gaps'),
  };

  const PCM_RATE = 24000; // koe's pcm: raw s16le, 24 kHz, mono
  // Network chunks can be a few bytes; gathering 50 ms before scheduling keeps the number of
  // AudioBuffers sane without delaying the first sound noticeably.
  const MIN_FRAMES_SECONDS = 0.05;
  const START_LEAD = 0.03; // seconds between scheduling the first buffer and its start
  const STREAMING = new Set(['pcm', 'wav']); // decoded here, played through Web Audio
  // Compressed formats the browser's Media Source Extensions can play while they arrive.
  const MSE_TYPES = { mp3: 'audio/mpeg', aac: 'audio/aac' };
  const MIME = {
    pcm: 'audio/L16', wav: 'audio/wav', mp3: 'audio/mpeg', opus: 'audio/ogg',
    flac: 'audio/flac', aac: 'audio/aac',
  };
  const EXT = { opus: 'ogg' };
  // Kokoro names its voices <language letter><gender letter>_<name>; the letter gives the
  // language when the server lists bare names, and codes are shown as language names.
  const LETTER_LANG = {
    a: 'en-us', b: 'en-gb', e: 'es', f: 'fr-fr', h: 'hi', i: 'it', j: 'ja', p: 'pt-br', z: 'cmn',
  };
  const LANG_NAMES = {
    'en-us': 'American English', 'en-gb': 'British English', es: 'Spanish', 'fr-fr': 'French',
    fr: 'French', hi: 'Hindi', it: 'Italian', ja: 'Japanese', 'pt-br': 'Brazilian Portuguese',
    cmn: 'Mandarin Chinese', zh: 'Mandarin Chinese',
  };
  const GENDERS = { f: 'female', m: 'male' };

  let ctx = null; // one AudioContext for the page, created on the first Speak (a user gesture)
  let run = null; // the request in flight or the audio still playing
  let downloadUrl = null;

  // Machine-readable state for tests and tools; never read by the page itself.
  function mark(key, value) {
    document.body.dataset[key] = String(value);
  }

  function setStatus(text) {
    ui.status.textContent = text;
  }

  function showError(text) {
    // Replace the text so that screen readers announce it again when the same error repeats.
    ui.error.textContent = '';
    ui.error.textContent = text;
    mark('error', text);
  }

  function clearError() {
    ui.error.textContent = '';
    delete document.body.dataset.error;
  }

  // The message of an API error body: OpenAI's {"error":{"message"}} and a few common shapes.
  async function errorMessage(response) {
    let text = '';
    try {
      text = await response.text();
    } catch (e) {
      // The body could not be read; the status alone must do.
    }
    let message = text.trim();
    try {
      const j = JSON.parse(text);
      const e = j && j.error;
      message = (e && (e.message || (typeof e === 'string' ? e : ''))) || j.message || j.detail ||
        message;
    } catch (e) {
      // Not JSON: keep the text as it came.
    }
    if (message.length > 500) message = message.slice(0, 500) + '…';
    const head = `The server answered ${response.status}${response.statusText ? ' ' + response.statusText : ''}`;
    return message ? `${head}: ${message}` : head + '.';
  }

  // Headers for an API call: the key, when the user gave one (koe serve may require it).
  function apiHeaders(extra) {
    const headers = Object.assign({}, extra);
    const key = ui.key.value.trim();
    if (key) headers.Authorization = `Bearer ${key}`;
    return headers;
  }

  // A 401/403 means the key is missing or wrong: open the key field so the fix is one Tab away.
  function askForKey(response) {
    if (response.status !== 401 && response.status !== 403) return;
    ui.keyBox.open = true;
  }

  // ---- voices ----

  function describeVoice(item) {
    const v = typeof item === 'string' ? { name: item } : item || {};
    const name = String(v.name || v.id || v.voice_id || v.voice || '');
    if (!name) return null;
    let language = v.language || v.lang || v.language_code || '';
    let gender = v.gender || '';
    const m = /^([a-z])([fm])_/.exec(name);
    if (m) {
      language = language || LETTER_LANG[m[1]] || '';
      gender = gender || GENDERS[m[2]] || '';
    }
    language = String(language);
    language = LANG_NAMES[language.toLowerCase()] || language;
    gender = String(gender).toLowerCase();
    return { name, language, gender: GENDERS[gender] || gender };
  }

  // Accepts a list of names or of objects, bare or under "voices" / "data", or a name → info map.
  function parseVoices(json) {
    let list = json;
    if (list && !Array.isArray(list)) list = list.voices || list.data || list;
    if (list && !Array.isArray(list) && typeof list === 'object') {
      list = Object.entries(list).map(([name, info]) =>
        Object.assign({ name }, typeof info === 'object' ? info : {}));
    }
    if (!Array.isArray(list)) return [];
    return list.map(describeVoice).filter(Boolean);
  }

  function fillVoices(voices) {
    const previous = localStorage.getItem('koe.voice') || ui.voice.value || 'af_heart';
    const groups = new Map();
    for (const v of voices) {
      const key = v.language || 'Other';
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(v);
    }
    const fragment = document.createDocumentFragment();
    for (const [language, members] of groups) {
      const group = document.createElement('optgroup');
      group.label = language;
      for (const v of members) {
        const option = document.createElement('option');
        option.value = v.name;
        option.textContent = v.gender ? `${v.name} (${v.gender})` : v.name;
        group.append(option);
      }
      fragment.append(group);
    }
    ui.voice.replaceChildren(fragment);
    const names = voices.map((v) => v.name);
    ui.voice.value = names.includes(previous) ? previous :
      names.includes('af_heart') ? 'af_heart' : names[0];
  }

  async function loadVoices() {
    try {
      const response = await fetch('/v1/audio/voices', { headers: apiHeaders({ Accept: 'application/json' }) });
      if (!response.ok) {
        askForKey(response);
        throw new Error(await errorMessage(response));
      }
      const voices = parseVoices(await response.json());
      if (!voices.length) throw new Error('The server lists no voices.');
      fillVoices(voices);
      ui.voiceHint.textContent = `${voices.length} voice${voices.length === 1 ? '' : 's'}.`;
    } catch (e) {
      ui.voiceHint.textContent = 'Voice list unavailable; the default voice is used.';
      showError(`Could not load the voices. ${e.message}`);
    }
    mark('voices', ui.voice.options.length);
  }

  // ---- playback ----

  function audioContext() {
    if (!ctx) {
      ctx = new AudioContext();
      ctx.addEventListener('statechange', () => mark('audioState', ctx.state));
    }
    // Resume inside the click or key press: browsers only allow sound after a user gesture.
    if (ctx.state === 'suspended') ctx.resume();
    mark('audioState', ctx.state);
    return ctx;
  }

  // Schedules 16-bit PCM frames back to back as they arrive. Byte chunks may split a sample or a
  // frame anywhere, so the unconsumed tail is kept for the next chunk.
  class PcmPlayer {
    constructor(context, onDrained) {
      this.ctx = context;
      this.onDrained = onDrained;
      this.rate = 0;
      this.channels = 0;
      this.tail = new Uint8Array(0);
      this.pending = []; // Float32Array per channel, not yet scheduled
      this.pendingFrames = 0;
      this.frames = 0; // frames received
      this.nextTime = 0;
      this.sources = new Set();
      this.scheduled = 0;
      this.gaps = 0;
      this.ended = false;
      this.stopped = false;
    }

    configure(rate, channels) {
      this.rate = rate;
      this.channels = channels;
      this.minFrames = Math.ceil(rate * MIN_FRAMES_SECONDS);
    }

    push(bytes) {
      let data = bytes;
      if (this.tail.length) {
        data = new Uint8Array(this.tail.length + bytes.length);
        data.set(this.tail);
        data.set(bytes, this.tail.length);
      }
      const frameBytes = 2 * this.channels;
      const frames = Math.floor(data.length / frameBytes);
      this.tail = data.slice(frames * frameBytes);
      if (!frames) return;
      const view = new DataView(data.buffer, data.byteOffset, frames * frameBytes);
      const planes = [];
      for (let c = 0; c < this.channels; c++) {
        const plane = new Float32Array(frames);
        for (let i = 0; i < frames; i++) plane[i] = view.getInt16((i * this.channels + c) * 2, true) / 32768;
        planes.push(plane);
      }
      this.pending.push(planes);
      this.pendingFrames += frames;
      this.frames += frames;
      if (this.pendingFrames >= this.minFrames) this.flush();
    }

    flush() {
      if (!this.pendingFrames || this.stopped) return;
      const buffer = this.ctx.createBuffer(this.channels, this.pendingFrames, this.rate);
      for (let c = 0; c < this.channels; c++) {
        const out = buffer.getChannelData(c);
        let at = 0;
        for (const planes of this.pending) {
          out.set(planes[c], at);
          at += planes[c].length;
        }
      }
      this.pending = [];
      this.pendingFrames = 0;
      this.play(buffer);
    }

    play(buffer) {
      const now = this.ctx.currentTime;
      let start = this.nextTime;
      if (this.scheduled === 0) {
        start = now + START_LEAD;
      } else if (start < now) {
        // The audio ran dry before this buffer arrived: an audible gap, counted and shown.
        this.gaps++;
        start = now + START_LEAD;
      }
      const source = this.ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(this.ctx.destination);
      source.addEventListener('ended', () => {
        this.sources.delete(source);
        mark('sourcesActive', this.sources.size);
        if (this.ended && !this.sources.size && !this.stopped) this.onDrained();
      });
      source.start(start);
      this.sources.add(source);
      this.nextTime = start + buffer.duration;
      this.scheduled++;
      mark('buffersScheduled', this.scheduled);
      mark('sourcesActive', this.sources.size);
    }

    // No more input: play what is left, and report when the last buffer has played.
    end() {
      this.ended = true;
      this.flush();
      if (!this.sources.size && !this.stopped) this.onDrained();
    }

    stop() {
      this.stopped = true;
      for (const source of this.sources) {
        try {
          source.stop();
        } catch (e) {
          // Already stopped.
        }
      }
      this.sources.clear();
      mark('sourcesActive', 0);
    }

    get seconds() {
      return this.rate ? this.frames / this.rate : 0;
    }
  }

  function concat(chunks) {
    let size = 0;
    for (const c of chunks) size += c.length;
    const out = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  function mseType(format) {
    const type = MSE_TYPES[format];
    return type && window.MediaSource && MediaSource.isTypeSupported(type) ? type : null;
  }

  // Plays a compressed stream (mp3, aac) while it arrives: bytes are appended to a MediaSource
  // behind an <audio> element, one append at a time as the SourceBuffer requires.
  class MsePlayer {
    constructor(type, onDrained, onError) {
      this.onDrained = onDrained;
      this.onError = onError;
      this.queue = [];
      this.buffer = null;
      this.started = false;
      this.playing = false;
      this.ended = false;
      this.stopped = false;
      this.scheduled = 0;
      this.gaps = 0;
      this.media = new MediaSource();
      this.audio = new Audio();
      this.url = URL.createObjectURL(this.media);
      this.audio.src = this.url;
      this.media.addEventListener('sourceopen', () => {
        if (this.stopped) return;
        try {
          this.buffer = this.media.addSourceBuffer(type);
        } catch (e) {
          this.fail(e);
          return;
        }
        this.buffer.addEventListener('updateend', () => this.appended());
        this.pump();
      }, { once: true });
      this.audio.addEventListener('playing', () => {
        this.playing = true;
        mark('sourcesActive', 1);
      });
      // Playback waiting for data after it has begun is an audible gap.
      this.audio.addEventListener('waiting', () => { if (this.playing) this.gaps++; });
      this.audio.addEventListener('ended', () => {
        mark('sourcesActive', 0);
        if (!this.stopped) this.onDrained();
      });
      this.audio.addEventListener('error', () => {
        const e = this.audio.error;
        this.fail(new Error(e && e.message ? e.message : 'the audio element failed'));
      });
    }

    push(bytes) {
      this.queue.push(bytes);
      this.pump();
    }

    pump() {
      if (!this.buffer || this.buffer.updating || this.stopped) return;
      if (this.queue.length) {
        const data = concat(this.queue);
        this.queue = [];
        try {
          this.buffer.appendBuffer(data);
        } catch (e) {
          this.fail(e);
        }
      } else if (this.ended && this.media.readyState === 'open') {
        this.media.endOfStream();
      }
    }

    appended() {
      if (this.stopped) return;
      this.scheduled++;
      mark('buffersScheduled', this.scheduled);
      if (!this.started) {
        this.started = true;
        this.audio.play().catch((e) => this.fail(e));
      }
      this.pump();
    }

    end() {
      this.ended = true;
      this.pump();
    }

    stop() {
      if (this.stopped) return;
      this.stopped = true;
      this.audio.pause();
      this.audio.removeAttribute('src');
      this.audio.load();
      URL.revokeObjectURL(this.url);
      mark('sourcesActive', 0);
    }

    fail(e) {
      if (this.stopped) return;
      this.stop();
      this.onError(e);
    }

    get seconds() {
      if (this.ended && Number.isFinite(this.audio.duration)) return this.audio.duration;
      try {
        const b = this.buffer && this.buffer.buffered;
        return b && b.length ? b.end(b.length - 1) : 0;
      } catch (e) {
        return 0; // the buffer is gone after a stop
      }
    }
  }

  // Reads the header of a streamed WAV file, then hands the sample bytes to a sink (configure()
  // and push(), like PcmPlayer). A streaming server cannot know the length, so the data chunk's
  // size field is ignored and the data runs to the end of the stream.
  class WavReader {
    constructor(sink) {
      this.player = sink;
      this.head = new Uint8Array(0);
      this.inData = false;
      this.format = null;
    }

    push(bytes) {
      if (this.inData) {
        this.player.push(bytes);
        return;
      }
      const joined = new Uint8Array(this.head.length + bytes.length);
      joined.set(this.head);
      joined.set(bytes, this.head.length);
      this.head = joined;
      const v = new DataView(joined.buffer);
      if (joined.length < 12) return;
      const tag = (at) => String.fromCharCode(...joined.subarray(at, at + 4));
      if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error('the WAV stream has no RIFF/WAVE header');
      let at = 12;
      while (at + 8 <= joined.length) {
        const id = tag(at);
        const size = v.getUint32(at + 4, true);
        if (id === 'data') {
          if (!this.format) throw new Error('the WAV stream has no fmt chunk before its data');
          this.inData = true;
          this.head = new Uint8Array(0);
          const rest = joined.subarray(at + 8);
          if (rest.length) this.player.push(rest);
          return;
        }
        if (at + 8 + size > joined.length) return; // chunk not complete yet
        if (id === 'fmt ') {
          const codec = v.getUint16(at + 8, true);
          const channels = v.getUint16(at + 10, true);
          const rate = v.getUint32(at + 12, true);
          const bits = v.getUint16(at + 22, true);
          // WAVE_FORMAT_EXTENSIBLE (0xFFFE) may also carry 16-bit integer PCM.
          if ((codec !== 1 && codec !== 0xfffe) || bits !== 16 || !channels || !rate) {
            throw new Error(`unsupported WAV format (codec ${codec}, ${bits} bits)`);
          }
          this.format = { rate, channels };
          this.player.configure(rate, channels);
        }
        at += 8 + size + (size & 1); // chunks are padded to an even size
      }
    }
  }

  // ---- a request ----

  function formatSeconds(s) {
    return `${s.toFixed(2)} s`;
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  }

  function resetStats() {
    for (const el of [ui.ttfa, ui.rtf, ui.audio, ui.bytes, ui.gaps]) el.textContent = '–';
    for (const key of ['bytes', 'ttfaMs', 'rtf', 'audioSeconds', 'buffersScheduled', 'sourcesActive', 'gaps']) {
      delete document.body.dataset[key];
    }
  }

  function setState(state) {
    mark('state', state);
    const busy = state === 'requesting' || state === 'streaming' || state === 'playing';
    // Moving focus off a button that becomes disabled keeps keyboard users in the form.
    if (!busy && document.activeElement === ui.stop) ui.speak.focus();
    ui.stop.disabled = !busy;
  }

  function offerDownload(r) {
    if (downloadUrl) URL.revokeObjectURL(downloadUrl);
    let blob;
    let ext = EXT[r.format] || r.format;
    if (STREAMING.has(r.format)) {
      blob = wavBlob(r.pcm, r.player.rate, r.player.channels);
      ext = 'wav';
    } else {
      blob = new Blob(r.chunks, { type: MIME[r.format] || 'application/octet-stream' });
    }
    downloadUrl = URL.createObjectURL(blob);
    ui.download.href = downloadUrl;
    ui.download.download = `koe-${r.voice.replace(/[^A-Za-z0-9_.+-]+/g, '_')}.${ext}`;
    ui.download.textContent = `Download ${ext.toUpperCase()} (${formatBytes(blob.size)})`;
    ui.download.hidden = false;
    mark('downloadBytes', blob.size);
  }

  // A complete WAV file around the received 16-bit samples (the stream's own header, if any, is
  // for an unknown length and is rebuilt with the real one).
  function wavBlob(chunks, rate, channels) {
    let size = 0;
    for (const c of chunks) size += c.length;
    size -= size % (2 * channels);
    const h = new DataView(new ArrayBuffer(44));
    const ascii = (at, s) => [...s].forEach((ch, i) => h.setUint8(at + i, ch.charCodeAt(0)));
    ascii(0, 'RIFF');
    h.setUint32(4, 36 + size, true);
    ascii(8, 'WAVE');
    ascii(12, 'fmt ');
    h.setUint32(16, 16, true);
    h.setUint16(20, 1, true); // integer PCM
    h.setUint16(22, channels, true);
    h.setUint32(24, rate, true);
    h.setUint32(28, rate * channels * 2, true);
    h.setUint16(32, channels * 2, true);
    h.setUint16(34, 16, true);
    ascii(36, 'data');
    h.setUint32(40, size, true);
    const body = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      const n = Math.min(c.length, size - at);
      body.set(c.subarray(0, n), at);
      at += n;
    }
    return new Blob([h.buffer, body], { type: 'audio/wav' });
  }

  function showSeconds(r) {
    ui.audio.textContent = formatSeconds(r.seconds);
    mark('audioSeconds', r.seconds.toFixed(3));
    if (r.player) {
      ui.gaps.textContent = String(r.player.gaps);
      mark('gaps', r.player.gaps);
    }
  }

  function showTiming(r) {
    if (r.tFirst !== null) {
      const ms = r.tFirst - r.t0;
      ui.ttfa.textContent = `${Math.round(ms)} ms`;
      mark('ttfaMs', ms.toFixed(1));
    }
    if (r.tEnd !== null && r.seconds > 0) {
      const rtf = (r.tEnd - r.t0) / 1000 / r.seconds;
      // Below 1 means faster than real time; the speed-up is spelled out for everyone else.
      const speedup = document.createElement('small');
      speedup.textContent = ` ${(1 / rtf).toFixed(1)}× real time`;
      ui.rtf.replaceChildren(rtf.toFixed(3), speedup);
      mark('rtf', rtf.toFixed(4));
    }
  }

  function finished(r, state, text) {
    if (run !== r) return;
    if (state !== 'playing') run = null;
    setState(state);
    setStatus(text);
  }

  // TTFA: from the request being sent to the first byte of audio arriving.
  function firstAudio(r) {
    if (r.tFirst !== null) return;
    r.tFirst = performance.now();
    showTiming(r);
    setState('streaming');
    setStatus(r.player ? 'Playing while the rest arrives…' : 'Receiving; this format plays once it is complete…');
  }

  async function speak() {
    if (run) stop('Replaced by a new request.');
    clearError();
    const input = ui.text.value;
    if (!input.trim()) {
      showError('Type some text to speak first.');
      setState('error');
      ui.text.focus();
      return;
    }
    const r = {
      format: ui.format.value,
      voice: ui.voice.value,
      controller: new AbortController(),
      t0: 0, tFirst: null, tEnd: null,
      bytes: 0, seconds: 0,
      chunks: [], // every byte received, for the download of a compressed format
      pcm: [], // sample bytes only, for the WAV download of pcm and wav
      player: null, sink: null,
    };
    run = r;
    resetStats();
    ui.download.hidden = true;
    localStorage.setItem('koe.voice', r.voice);
    localStorage.setItem('koe.format', r.format);
    const context = audioContext();
    const drained = () => {
      r.seconds = r.player.seconds;
      showSeconds(r);
      showTiming(r);
      finished(r, 'done', `Done: ${formatSeconds(r.seconds)} of audio played.`);
    };
    const type = mseType(r.format);
    if (STREAMING.has(r.format)) {
      r.player = new PcmPlayer(context, drained);
      if (r.format === 'pcm') {
        r.player.configure(PCM_RATE, 1);
        r.sink = (bytes) => { r.pcm.push(bytes); r.player.push(bytes); };
      } else {
        // The reader passes on only the sample bytes: those are kept for the download too.
        const player = r.player;
        const reader = new WavReader({
          configure: (rate, channels) => player.configure(rate, channels),
          push: (bytes) => { firstAudio(r); r.pcm.push(bytes); player.push(bytes); },
        });
        r.sink = (bytes) => reader.push(bytes);
      }
    } else if (type) {
      const player = new MsePlayer(type, drained, (e) => {
        if (run !== r) return;
        r.controller.abort();
        showError(`This browser could not play the ${r.format.toUpperCase()} stream (${e.message}); pick PCM or WAV.`);
        finished(r, 'error', 'Failed.');
      });
      r.player = player;
      r.sink = (bytes) => { r.chunks.push(bytes); player.push(bytes); };
    }
    setState('requesting');
    setStatus('Requesting speech…');

    const body = {
      model: 'kokoro',
      input,
      voice: r.voice,
      response_format: r.format,
      speed: Number(ui.speed.value),
      stream: true,
    };
    let response;
    r.t0 = performance.now();
    try {
      response = await fetch('/v1/audio/speech', {
        method: 'POST',
        headers: apiHeaders({ 'Content-Type': 'application/json' }),
        body: JSON.stringify(body),
        signal: r.controller.signal,
      });
    } catch (e) {
      if (r.controller.signal.aborted) return;
      showError(`The server could not be reached: ${e.message}`);
      finished(r, 'error', 'Failed.');
      return;
    }
    if (!response.ok) {
      askForKey(response);
      showError(await errorMessage(response));
      finished(r, 'error', 'Failed.');
      return;
    }
    try {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!value || !value.length) continue;
        // A WAV header is not audio: for wav the clock stops at the first sample byte (WavReader).
        if (r.format !== 'wav') firstAudio(r);
        r.bytes += value.length;
        ui.bytes.textContent = formatBytes(r.bytes);
        mark('bytes', r.bytes);
        if (r.sink) {
          r.sink(value);
          r.seconds = r.player.seconds;
          showSeconds(r);
        } else {
          r.chunks.push(value);
        }
      }
    } catch (e) {
      if (r.controller.signal.aborted) return;
      showError(`The audio stream broke off: ${e.message}`);
      if (r.player) r.player.stop();
      finished(r, 'error', 'Failed: the audio is incomplete.');
      return;
    }
    r.tEnd = performance.now();
    if (r.bytes === 0) {
      if (r.player) r.player.stop();
      showError('The server sent no audio.');
      finished(r, 'error', 'Failed.');
      return;
    }
    if (r.player) {
      showTiming(r);
      offerDownload(r);
      finished(r, 'playing', STREAMING.has(r.format) ?
        `All ${formatSeconds(r.seconds)} received; playing…` : 'All audio received; playing…');
      r.player.end();
      return;
    }
    await playWhole(r);
  }

  // Compressed formats: decoded and played once complete (the duration comes from the decoder).
  async function playWhole(r) {
    offerDownload(r);
    const joined = await new Blob(r.chunks).arrayBuffer();
    let buffer;
    try {
      buffer = await ctx.decodeAudioData(joined);
    } catch (e) {
      if (run !== r) return;
      showError(`This browser cannot decode ${r.format.toUpperCase()}; use the download link or pick PCM.`);
      finished(r, 'error', 'Received, but not playable here.');
      return;
    }
    if (run !== r) return;
    r.seconds = buffer.duration;
    const player = new PcmPlayer(ctx, () => finished(r, 'done', `Done: ${formatSeconds(r.seconds)} of audio played.`));
    player.configure(buffer.sampleRate, buffer.numberOfChannels);
    r.player = player;
    showSeconds(r);
    showTiming(r);
    finished(r, 'playing', `${formatSeconds(r.seconds)} received; playing…`);
    player.play(buffer);
    player.end();
  }

  function stop(reason) {
    const r = run;
    if (!r) return;
    run = null;
    r.controller.abort();
    if (r.player) r.player.stop();
    setState('stopped');
    setStatus(reason || `Stopped after ${formatSeconds(r.seconds)} of audio.`);
  }

  // ---- wiring ----

  function showSpeed() {
    const v = Number(ui.speed.value).toFixed(2);
    ui.speedValue.textContent = `${v}×`;
    ui.speed.setAttribute('aria-valuetext', `${v} times`);
  }

  function showFormatHint() {
    const format = ui.format.value;
    ui.formatHint.textContent = STREAMING.has(format) || mseType(format) ?
      'Plays while it arrives.' : 'Plays once complete; best for downloading.';
  }

  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    speak();
  });
  ui.stop.addEventListener('click', () => stop());
  ui.speed.addEventListener('input', showSpeed);
  ui.format.addEventListener('change', showFormatHint);
  ui.text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      ui.form.requestSubmit();
    }
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && run) {
      event.preventDefault();
      stop();
    }
  });

  // The key lives in sessionStorage: gone when the tab closes, never written to disk for good.
  ui.key.value = sessionStorage.getItem('koe.key') || '';
  ui.key.addEventListener('change', () => {
    sessionStorage.setItem('koe.key', ui.key.value.trim());
    clearError();
    loadVoices();
  });
  if (ui.key.value) ui.keyBox.open = true;

  const savedFormat = localStorage.getItem('koe.format');
  if (savedFormat && [...ui.format.options].some((o) => o.value === savedFormat)) ui.format.value = savedFormat;
  showSpeed();
  showFormatHint();
  setState('idle');
  loadVoices();

  // The page's parts, for tests and tools (tests/web/page_test.js checks them in the browser).
  window.koe = Object.freeze({ PcmPlayer, WavReader, parseVoices, wavBlob });
})();
