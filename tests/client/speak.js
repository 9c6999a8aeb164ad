// The official OpenAI Node client against koe: streams client.audio.speech.create(...) to a
// file, exactly as an existing OpenAI user's code would, then checks that a bad request comes
// back as the client's own typed error carrying koe's message.
// Usage: node speak.js PORT OUT FORMAT [VOICE]   (KOE_TEST_KEY: the API key to send)
'use strict';
const fs = require('fs');
const { Readable } = require('stream');
const { pipeline } = require('stream/promises');
const OpenAI = require('openai');

async function main() {
  const [port, out, format, voice] = process.argv.slice(2);
  const client = new OpenAI({
    apiKey: process.env.KOE_TEST_KEY || 'unused',
    baseURL: `http://127.0.0.1:${port}/v1`,
    maxRetries: 0,
  });
  const response = await client.audio.speech.create({
    model: 'tts-1',
    voice: voice || 'alloy',
    input: 'Hello from the official OpenAI client. The quick brown fox jumps over the lazy dog.',
    response_format: format || 'mp3',
  });
  // The body is a web stream or a Node stream depending on the client's fetch.
  const body = typeof response.body.getReader === 'function' ? Readable.fromWeb(response.body) : response.body;
  await pipeline(body, fs.createWriteStream(out));
  try {
    await client.audio.speech.create({ model: 'tts-1', voice: 'no_such_voice', input: 'x' });
    console.error('expected an error for an unknown voice');
    process.exit(1);
  } catch (e) {
    if (!(e instanceof OpenAI.BadRequestError) || !/unknown voice/.test(e.message)) {
      console.error('unexpected error', e);
      process.exit(1);
    }
  }
}

main().catch((e) => {
  // An authentication failure is reported by its class name, so the test can tell it apart.
  console.error(e && e.constructor ? e.constructor.name : '', e && e.message);
  process.exit(e instanceof OpenAI.AuthenticationError ? 3 : 1);
});
