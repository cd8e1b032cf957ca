// kafkajs client suite. Run through ../run.sh (needs FJORD_IT_BOOTSTRAP; modules from NODE_PATH).
//
// Codecs: kafkajs has gzip built in; snappy comes from kafkajs-snappy (pure JS); lz4 and
// zstd are registered here from pure-JS / WebAssembly libraries (lz4js, zstd-codec) because
// the usual codec packages (kafkajs-lz4, @kafkajs/zstd) need native builds.
// kafkajs consumes only through consumer groups: every read here is a fresh group
// (FindCoordinator, JoinGroup, SyncGroup, ...), positioned with consumer.seek().
'use strict';
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');
const lz4js = require('lz4js');
const xxh32 = require('lz4js/xxh32.js').hash;
const { ZstdCodec } = require('zstd-codec');

const SUITE = 'kafkajs';
const PARTITIONS = 3;
const BOOTSTRAP = process.env.FJORD_IT_BOOTSTRAP;
const RUN_ID = Date.now().toString(16);

// An LZ4 frame as Kafka takes it: independent 64 KB blocks (lz4js.compress() writes
// dependent blocks, which Kafka rejects: "Dependent block stream is unsupported").
function lz4Frame(src) {
  const BLOCK = 64 * 1024;
  const header = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0]); // magic, FLG: v01 + block independence, BD: 64 KB
  header[6] = (xxh32(0, header, 4, 2) >>> 8) & 0xff;
  const parts = [header];
  for (let i = 0; i < src.length; i += BLOCK) {
    const n = Math.min(BLOCK, src.length - i);
    const out = Buffer.alloc(lz4js.compressBound(n));
    const size = lz4js.compressBlock(src, out, i, n, new Uint32Array(1 << 16));
    const len = Buffer.alloc(4);
    if (size === 0 || size >= n) {
      len.writeUInt32LE((0x80000000 | n) >>> 0);
      parts.push(len, src.subarray(i, i + n));
    } else {
      len.writeUInt32LE(size);
      parts.push(len, out.subarray(0, size));
    }
  }
  parts.push(Buffer.alloc(4)); // end mark
  return Buffer.concat(parts);
}

async function registerCodecs() {
  CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
  CompressionCodecs[CompressionTypes.LZ4] = () => ({
    compress: async (encoder) => lz4Frame(encoder.buffer),
    decompress: async (buffer) => Buffer.from(lz4js.decompress(buffer)),
  });
  const zstd = await new Promise((resolve) => ZstdCodec.run(resolve));
  const simple = new zstd.Simple();
  CompressionCodecs[CompressionTypes.ZSTD] = () => ({
    compress: async (encoder) => Buffer.from(simple.compress(encoder.buffer, 3)),
    decompress: async (buffer) => Buffer.from(simple.decompress(buffer)),
  });
}

const CODECS = [
  ['none', CompressionTypes.None],
  ['gzip', CompressionTypes.GZIP],
  ['snappy', CompressionTypes.Snappy],
  ['lz4', CompressionTypes.LZ4],
  ['zstd', CompressionTypes.ZSTD],
];

function field(tok) {
  if (tok === '~') return null;
  if (tok === '.') return Buffer.alloc(0);
  const [h, n] = tok.split('*');
  return Buffer.from(h.repeat(n ? Number(n) : 1), 'hex');
}

// records.txt with explicit timestamps 1 s apart, starting 10 minutes ago.
function loadRecords() {
  const base = Math.floor(Date.now() / 1000) * 1000 - 600000;
  const out = [];
  for (const raw of fs.readFileSync(path.join(__dirname, '..', 'records.txt'), 'ascii').split('\n')) {
    const f = raw.split('#')[0].trim().split(/\s+/).filter(Boolean);
    if (f.length === 0) continue;
    const headers = f.slice(3).map((h) => {
      const [k, v] = h.split('=');
      return [field(k).toString('utf8'), field(v)];
    });
    out.push({ partition: Number(f[0]), key: field(f[1]), value: field(f[2]), headers, ts: base + 1000 * out.length });
  }
  return out;
}

// kafkajs headers are an object; a repeated name maps to an array of values.
function headersObject(list) {
  const o = {};
  for (const [k, v] of list) {
    if (k in o) o[k] = [].concat(o[k], [v]);
    else o[k] = v;
  }
  return o;
}

function show(b) {
  if (b === null || b === undefined) return String(b);
  return b.length > 24 ? `0x${b.subarray(0, 24).toString('hex')}...(${b.length} bytes)` : `0x${b.toString('hex')}`;
}

function norm(r) {
  const hs = Object.entries(r.headers).map(([k, v]) => `${k}=${[].concat(v).map(show).join('|')}`);
  return `<key=${show(r.key)} value=${show(r.value)} headers=[${hs.join(' ')}] ts=${r.ts}>`;
}

function assertSame(what, got, want) {
  const w = want.map((r) => norm({ ...r, headers: headersObject(r.headers) }));
  const g = got.map(norm);
  for (let i = 0; i < Math.min(g.length, w.length); i++) {
    // compare bytes exactly (norm shortens long values)
    const a = got[i];
    const b = want[i];
    const eq = (x, y) => (x === null ? y === null : y !== null && Buffer.compare(x, y) === 0);
    const hEq = JSON.stringify(Object.entries(a.headers).map(([k, v]) => [k, [].concat(v).map((x) => (x === null ? null : x.toString('hex')))])) ===
      JSON.stringify(Object.entries(headersObject(b.headers)).map(([k, v]) => [k, [].concat(v).map((x) => (x === null ? null : x.toString('hex')))]));
    if (!eq(a.key, b.key) || !eq(a.value, b.value) || !hEq || a.ts !== b.ts) {
      throw new assert.AssertionError({ message: `${what}: record ${i} differs:\n  got      ${g[i]}\n  expected ${w[i]}` });
    }
  }
  assert.strictEqual(got.length, want.length, `${what}: got ${got.length} records, expected ${want.length}`);
}

const kafka = new Kafka({ clientId: 'fjord-it', brokers: [BOOTSTRAP], logLevel: logLevel.WARN, retry: { retries: 10 } });

// The one topic-creation step: admin CreateTopics, or (auto) nothing here: kafkajs'
// admin never lets its Metadata requests auto-create, so the topic is auto-created by the
// producer's own Metadata request (allowAutoTopicCreation, on by default) in produce().
async function createTopic(topic) {
  if (process.env.FJORD_IT_TOPICS !== 'admin') return;
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.ok(await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }], waitForLeaders: true }));
  } finally {
    await admin.disconnect();
  }
}

async function produce(topic, compression, records) {
  const producer = kafka.producer();
  await producer.connect();
  try {
    const res = await producer.send({
      topic,
      compression,
      messages: records.map((r) => ({ partition: r.partition, key: r.key, value: r.value, headers: headersObject(r.headers), timestamp: String(r.ts) })),
    });
    const base = {};
    for (const x of res) {
      assert.strictEqual(x.errorCode, 0);
      base[x.partition] = x.baseOffset;
    }
    for (let p = 0; p < PARTITIONS; p++) assert.strictEqual(base[p], '0', `p${p}: base offset ${base[p]}, expected 0`);
  } finally {
    await producer.disconnect();
  }
}

// Reads with a new consumer group from the given offsets ({partition: offset}) until
// `counts[partition]` records of each partition arrived.
async function read(topic, starts, counts) {
  const consumer = kafka.consumer({ groupId: `fjord-it-${topic}-${Math.random().toString(16).slice(2)}`, maxWaitTimeInMs: 200 });
  const got = {};
  for (const p of Object.keys(starts)) got[p] = [];
  let crash = null; // e.g. no group coordinator: report that, not the seek that fails after it
  consumer.on(consumer.events.CRASH, (e) => { crash = crash || e.payload.error; });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: false });
    let done;
    const finished = new Promise((resolve) => { done = resolve; });
    const complete = () => Object.keys(starts).every((p) => got[p].length >= counts[p]);
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const list = got[partition];
        if (list === undefined) return;
        const want = starts[partition] + list.length;
        assert.strictEqual(Number(message.offset), want, `p${partition}: offset ${message.offset}, expected ${want}`);
        list.push({ key: message.key, value: message.value, headers: message.headers || {}, ts: Number(message.timestamp) });
        if (complete()) done();
      },
    });
    try {
      for (const [p, o] of Object.entries(starts)) consumer.seek({ topic, partition: Number(p), offset: String(o) });
    } catch (e) {
      throw crash ? new Error(`consumer group crashed: ${crash.stack || crash}`) : e;
    }
    let timer;
    const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`read timed out: ${JSON.stringify(Object.fromEntries(Object.entries(got).map(([p, l]) => [p, l.length])))} of ${JSON.stringify(counts)}`)), 30000); });
    try {
      await Promise.race([finished, timeout]);
    } finally {
      clearTimeout(timer);
    }
  } finally {
    await consumer.disconnect();
  }
  return got;
}

function timestampQuery(ts) {
  for (let j = Math.max(1, Math.floor(ts.length / 2)); j < ts.length; j++) {
    if (ts[j] > ts[j - 1] + 1) return [Math.floor((ts[j - 1] + ts[j]) / 2) + 1, j];
  }
  throw new Error('no distinct consecutive timestamps');
}

async function checkCodec(name, compression) {
  const topic = `it.${SUITE}.${name}.${RUN_ID}`;
  // kafkajs cannot encode a null header value (its encoder takes the byte length of
  // every value): such a header is sent, and expected back, as an empty value.
  const records = loadRecords().map((r) => ({ ...r, headers: r.headers.map(([k, v]) => [k, v === null ? Buffer.alloc(0) : v]) }));
  const parts = [...Array(PARTITIONS).keys()];
  const want = parts.map((p) => records.filter((r) => r.partition === p));
  await createTopic(topic);
  await produce(topic, compression, records);

  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    for (const p of parts) {
      const o = offsets.find((x) => x.partition === p);
      assert.deepStrictEqual([o.low, o.high], ['0', String(want[p].length)], `p${p} offsets ${JSON.stringify(o)}`);
    }
    let got = await read(topic, Object.fromEntries(parts.map((p) => [p, 0])), Object.fromEntries(parts.map((p) => [p, want[p].length])));
    for (const p of parts) assertSame(`p${p} from the beginning`, got[p], want[p]);

    const mid = parts.map((p) => Math.floor(want[p].length / 2));
    got = await read(topic, Object.fromEntries(parts.map((p) => [p, mid[p]])), Object.fromEntries(parts.map((p) => [p, want[p].length - mid[p]])));
    for (const p of parts) assertSame(`p${p} from offset ${mid[p]}`, got[p], want[p].slice(mid[p]));

    // ListOffsets by timestamp: one query per partition (timestamps differ per partition)
    const starts = {};
    for (const p of parts) {
      const [q, j] = timestampQuery(want[p].map((r) => r.ts));
      const found = (await admin.fetchTopicOffsetsByTimestamp(topic, q)).find((x) => x.partition === p);
      assert.strictEqual(found.offset, String(j), `p${p} fetchTopicOffsetsByTimestamp(${q}) = ${found.offset}, expected ${j}`);
      starts[p] = j;
    }
    got = await read(topic, starts, Object.fromEntries(parts.map((p) => [p, want[p].length - starts[p]])));
    for (const p of parts) assertSame(`p${p} from the timestamp's offset ${starts[p]}`, got[p], want[p].slice(starts[p]));
  } finally {
    await admin.disconnect();
  }
}

async function main() {
  assert.ok(BOOTSTRAP, 'FJORD_IT_BOOTSTRAP is not set (run through tests/integration/run.sh)');
  console.log(`${SUITE}: kafkajs ${require('kafkajs/package.json').version}, node ${process.version}`);
  await registerCodecs();
  const only = process.env.FJORD_IT_ONLY || '';
  let passed = 0;
  let failed = 0;
  for (const [name, type] of CODECS) {
    if (!name.includes(only)) continue;
    const t0 = Date.now();
    try {
      await checkCodec(name, type);
      passed++;
      console.log(`ok   ${SUITE}: ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${SUITE}: ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)\n${e.stack}`);
    }
  }
  console.log(`${SUITE}: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(e.stack);
  process.exit(1);
});
