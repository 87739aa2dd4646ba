/**
 * Corrupt and truncated files, fuzzed: seeded fast-check mutations of valid .npy and IDX files
 * (bytes flipped, cut, appended or spliced out; header text regenerated from the grammar's own
 * characters; length fields rewritten; headers nested thousands deep; plain random bytes). Each
 * parser either returns something self-consistent (its shape's product is its length, its data is
 * the file's bytes) or throws a FormatError naming the source — never another error type, and never
 * slowly (every call is timed: none may use a second of CPU).
 *
 * Repeatable: NUMGRAD_FUZZ_SEED fixes every input; NUMGRAD_FUZZ_PARSER_RUNS sets the inputs per property.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { FormatError } from '../../src/core/errors.js';
import { datasetFromIdx, parseIdx, parseImages, parseLabels } from '../../src/core/idx.js';
import { encodeNpy, parseFloatVector, parseIndexVector, parseNpy } from '../../src/core/npy.js';
import { ROOT } from '../helpers/redis.js';

const SEED = process.env.NUMGRAD_FUZZ_SEED ? Number(process.env.NUMGRAD_FUZZ_SEED) : 20_260_707;
const RUNS = process.env.NUMGRAD_FUZZ_PARSER_RUNS ? Number(process.env.NUMGRAD_FUZZ_PARSER_RUNS) : 3_000;
/**
 * A parse of a file of at most ~600 kB that needs this much CPU is a hang, not a loaded machine
 * (typical: under 1 ms; the largest generated headers 10–100 ms). CPU time, not wall time: the suite
 * shares two cores with other test files, which stretched one 100 ms parse to a second of wall time.
 */
const SLOW_CPU_MS = 1_000;
/** Wall time beyond which a parse is a hang whatever else runs. */
const HANG_MS = 10_000;
const SOURCE = 'fuzz.bin';

const figures: Record<string, { inputs: number; parsed: number; formatErrors: number; slowestMs: number }> = {};
afterAll(() => {
  mkdirSync(join(ROOT, 'test-artifacts/reliability'), { recursive: true });
  writeFileSync(join(ROOT, 'test-artifacts/reliability/fuzz-parsers.json'), `${JSON.stringify({ seed: SEED, ...figures }, null, 2)}\n`);
  console.info(`fuzz (parsers), seed ${SEED}: ${Object.entries(figures).map(([k, f]) => `${k} ${f.inputs} inputs (${f.parsed} parsed, ${f.formatErrors} FormatError, slowest ${f.slowestMs.toFixed(1)} ms CPU)`).join('; ')}`);
});

/** Process CPU time in ms (user + system). */
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Runs `parse`, times it, and counts a parse or a FormatError; anything else thrown fails the property. */
function attempt<T>(name: string, parse: () => T, check: (v: T) => void): void {
  const f = (figures[name] ??= { inputs: 0, parsed: 0, formatErrors: 0, slowestMs: 0 });
  f.inputs++;
  const t0 = performance.now();
  const c0 = cpuMs();
  let value: T | undefined;
  let thrown: unknown;
  let ok = false;
  try {
    value = parse();
    ok = true;
  } catch (err) {
    thrown = err;
  }
  const cpu = cpuMs() - c0;
  const wall = performance.now() - t0;
  f.slowestMs = Math.max(f.slowestMs, cpu);
  if (cpu > SLOW_CPU_MS || wall > HANG_MS) throw new Error(`${name} took ${cpu.toFixed(0)} ms of CPU (${wall.toFixed(0)} ms wall)`);
  if (!ok) {
    if (!(thrown instanceof FormatError)) throw new Error(`${name} threw ${thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown)}, not a FormatError`);
    if (!thrown.message.startsWith(`${SOURCE}: `)) throw new Error(`${name}: the FormatError does not name the source: ${thrown.message}`);
    f.formatErrors++;
    return;
  }
  check(value as T);
  f.parsed++;
}

// ---- mutations of a valid file ----------------------------------------------------------------------

type Mutate = (b: Uint8Array) => Uint8Array;

const mutation: fc.Arbitrary<Mutate> = fc.oneof(
  // Flip 1–8 bytes to random values.
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((flips): Mutate => (b) => {
    const out = Uint8Array.from(b);
    for (const [at, v] of flips) if (out.length > 0) out[at % out.length] = v;
    return out;
  }),
  // Truncate.
  fc.nat().map((n): Mutate => (b) => b.subarray(0, b.length === 0 ? 0 : n % b.length)),
  // Append junk.
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((tail): Mutate => (b) => Uint8Array.from([...b, ...tail])),
  // Cut a range out of the middle.
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 40 })).map(([at, len]): Mutate => (b) => {
    const i = b.length === 0 ? 0 : at % b.length;
    return Uint8Array.from([...b.subarray(0, i), ...b.subarray(i + len)]);
  }),
  // Rewrite a 16- or 32-bit field near the start (the .npy header length, the IDX magic or sizes), both byte orders.
  fc.tuple(fc.integer({ min: 0, max: 15 }), fc.nat({ max: 0xffffffff }), fc.boolean(), fc.boolean()).map(([at, v, wide, le]): Mutate => (b) => {
    const out = Uint8Array.from(b);
    const view = new DataView(out.buffer);
    if (wide && at + 4 <= out.length) view.setUint32(at, v, le);
    else if (at + 2 <= out.length) view.setUint16(at, v & 0xffff, le);
    return out;
  }),
);

/** Mutations applied one after another (1–4 of them). */
const mutations = fc.array(mutation, { minLength: 1, maxLength: 4 }).map((ms): Mutate => (b) => ms.reduce((x, mu) => mu(x), b));

// ---- .npy -----------------------------------------------------------------------------------------

/** A .npy from its parts (header text as given: the fuzzer may make it anything). */
function npy(header: string, data: Uint8Array, major = 1): Uint8Array {
  const prefix = major === 1 ? 10 : 12;
  const out = new Uint8Array(prefix + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[prefix + i] = header.charCodeAt(i) & 0xff;
  out.set(data, prefix + header.length);
  return out;
}

const validNpy: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.float64Array({ maxLength: 40 }).map((a) => encodeNpy(a)),
  fc.int32Array({ maxLength: 40 }).map((a) => encodeNpy(a)),
  fc.tuple(fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 6 })).chain(([r, c]) => fc.float64Array({ minLength: r * c, maxLength: r * c }).map((a) => encodeNpy(a, [r, c]))),
  // int64 and version 2.0, which encodeNpy does not write.
  fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 20 }).map((v) => {
    const data = new Uint8Array(8 * v.length);
    v.forEach((x, i) => new DataView(data.buffer).setBigInt64(8 * i, BigInt(x), true));
    return npy(`{'descr': '<i8', 'fortran_order': False, 'shape': (${v.length},), }\n`, data);
  }),
  fc.float64Array({ maxLength: 20 }).map((a) => npy(`{'descr': '<f8', 'fortran_order': False, 'shape': (${a.length},), }\n`, new Uint8Array(a.buffer), 2)),
);

/** Header text from the grammar's own alphabet, so the parser's deeper paths are reached, not only its first check. */
const headerText = fc
  .array(fc.constantFrom('{', '}', '(', ')', '[', ']', "'", '"', ',', ':', ' ', '\n', 'True', 'False', 'L', '-', '0', '1', '7', '40', "'descr'", "'shape'", "'fortran_order'", "'<f8'", "'<i4'", "'<i8'", "'>f8'", "'|u1'", '\x00', '\xff'), { maxLength: 60 })
  .map((parts) => parts.join(''));
const grammarNpy = fc.tuple(headerText, fc.uint8Array({ maxLength: 64 }), fc.constantFrom(1, 2)).map(([h, d, major]) => npy(h, d, major));
/** Headers nested 9 to 100000 deep, in version 2.0 (a 32-bit header length): before the fix, ~20000 '(' overflowed the stack (a RangeError). */
const deepNpy = fc.tuple(fc.integer({ min: 9, max: 100_000 }), fc.constantFrom('(', '[', '{'), fc.boolean()).map(([depth, open, closed]) => {
  const close = { '(': ')', '[': ']', '{': '}' }[open];
  const nest = open === '{' ? `${"{'k': ".repeat(depth)}1${'}'.repeat(closed ? depth : 0)}` : `${open.repeat(depth)}1${close.repeat(closed ? depth : 0)}`;
  return npy(`{'descr': '<f8', 'fortran_order': False, 'shape': ${nest}, }\n`, new Uint8Array(0), 2);
});

/**
 * A failing input prints as its size and first bytes (fast-check prints counterexamples; a 600 kB
 * header as a list of numbers would bury the message). The seed and path reproduce it exactly.
 */
function labelled(bytes: Uint8Array): Uint8Array {
  const head = Buffer.from(bytes.subarray(0, 48)).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return Object.assign(bytes, { [fc.toStringMethod]: () => `<${bytes.length} bytes: ${JSON.stringify(head)}${bytes.length > 48 ? '…' : ''}>` });
}

const npyInputs: fc.Arbitrary<Uint8Array> = fc.oneof(
  { arbitrary: fc.tuple(validNpy, mutations).map(([b, mu]) => mu(b)), weight: 6 },
  { arbitrary: validNpy, weight: 1 },
  { arbitrary: grammarNpy, weight: 3 },
  { arbitrary: fc.tuple(grammarNpy, mutations).map(([b, mu]) => mu(b)), weight: 1 },
  { arbitrary: deepNpy, weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 200 }), weight: 1 },
).map(labelled);

const bytesEqual = (a: ArrayBufferView, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b));

describe('.npy parsers on corrupt, truncated and generated files', () => {
  it(`parseNpy: ${RUNS} seeded inputs each parse self-consistently or throw a FormatError naming the file`, () => {
    fc.assert(
      fc.property(npyInputs, (bytes) => {
        attempt('parseNpy', () => parseNpy(bytes, SOURCE), (a) => {
          expect(['float64', 'int32', 'int64']).toContain(a.dtype);
          expect(a.shape.length === 1 || a.shape.length === 2).toBe(true);
          expect(a.shape.every((d) => Number.isInteger(d) && d >= 0)).toBe(true);
          expect(a.shape.reduce((x, y) => x * y, 1)).toBe(a.data.length);
          expect(a.data instanceof (a.dtype === 'float64' ? Float64Array : Int32Array)).toBe(true);
          // The data are the file's last bytes (int64 narrowed to int32 is checked by value).
          const itemsize = a.dtype === 'int32' ? 4 : 8;
          const tail = bytes.subarray(bytes.length - a.data.length * itemsize);
          if (a.dtype !== 'int64') expect(bytesEqual(a.data, tail)).toBe(true);
          else a.data.forEach((v, i) => expect(BigInt(v)).toBe(new DataView(tail.buffer, tail.byteOffset).getBigInt64(8 * i, true)));
          // And they survive a round trip through our own writer.
          const again = parseNpy(encodeNpy(a.data, a.shape), 'again');
          expect(bytesEqual(again.data, new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength))).toBe(true);
        });
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it(`parseFloatVector and parseIndexVector: ${RUNS} seeded inputs each, a vector or a FormatError`, () => {
    fc.assert(
      fc.property(npyInputs, (bytes) => {
        attempt('parseFloatVector', () => parseFloatVector(bytes, SOURCE), (v) => expect(v).toBeInstanceOf(Float64Array));
        attempt('parseIndexVector', () => parseIndexVector(bytes, SOURCE), (v) => expect(v).toBeInstanceOf(Int32Array));
      }),
      { seed: SEED + 1, numRuns: RUNS },
    );
  });
});

// ---- IDX ------------------------------------------------------------------------------------------

function idx(dims: number[], body: Uint8Array, type = 0x08): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + body.length);
  out.set([0, 0, type, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(body, 4 + 4 * dims.length);
  return out;
}

const validImages = fc.integer({ min: 0, max: 3 }).chain((n) => fc.uint8Array({ minLength: n * 784, maxLength: n * 784 }).map((px) => idx([n, 28, 28], px)));
const validLabels = fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 60 }).map((l) => idx([l.length], Uint8Array.from(l)));
const validAny = fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 4 }).chain((dims) => {
  const n = dims.reduce((a, b) => a * b, 1);
  return fc.uint8Array({ minLength: n, maxLength: n }).map((body) => idx(dims, body));
});
const validIdx = fc.oneof(validImages, validLabels, validAny);
/** A header of random type and dimension count (up to 255), sizes up to 2^32 − 1: shape products that overflow. */
const headerIdx = fc
  .tuple(fc.integer({ min: 0, max: 255 }), fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 255 }), fc.uint8Array({ maxLength: 64 }))
  .map(([type, dims, body]) => idx(dims, body, type));

const idxInputs: fc.Arbitrary<Uint8Array> = fc.oneof(
  { arbitrary: fc.tuple(validIdx, mutations).map(([b, mu]) => mu(b)), weight: 6 },
  { arbitrary: validIdx, weight: 1 },
  { arbitrary: headerIdx, weight: 2 },
  { arbitrary: fc.uint8Array({ maxLength: 200 }), weight: 1 },
).map(labelled);

describe('IDX parsers on corrupt, truncated and generated files', () => {
  it(`parseIdx: ${RUNS} seeded inputs each parse self-consistently or throw a FormatError naming the file`, () => {
    fc.assert(
      fc.property(idxInputs, (bytes) => {
        attempt('parseIdx', () => parseIdx(bytes, SOURCE), (a) => {
          const elements = a.shape.reduce((x, y) => x * y, 1);
          expect(a.data.length).toBe(elements);
          expect(bytes.length).toBe(4 + 4 * a.shape.length + elements);
          expect(bytesEqual(a.data, bytes.subarray(bytes.length - elements))).toBe(true);
          expect(a.shape.length).toBe(bytes[3]);
        });
      }),
      { seed: SEED + 2, numRuns: RUNS },
    );
  });

  it(`parseImages, parseLabels and datasetFromIdx: ${RUNS} seeded inputs each, a consistent dataset or a FormatError`, () => {
    fc.assert(
      fc.property(idxInputs, idxInputs, (a, b) => {
        attempt('parseImages', () => parseImages(a, SOURCE), (im) => expect(im.pixels.length).toBe(im.count * 784));
        attempt('parseLabels', () => parseLabels(b, SOURCE), (lb) => {
          expect(lb.labels.length).toBe(lb.count);
          expect(lb.labels.every((l) => l < 10)).toBe(true);
        });
        attempt('datasetFromIdx', () => datasetFromIdx(a, b, SOURCE, SOURCE), (d) => {
          expect(d.pixels.length).toBe(d.count * 784);
          expect(d.labels.length).toBe(d.count);
        });
      }),
      { seed: SEED + 3, numRuns: RUNS },
    );
  });
});
