/**
 * fast-check arbitraries of bad job payloads: a valid base job of each kind (fd-shard, ce-shard,
 * gradient, evaluation, train-step) with one to three fields broken, or junk in place of the whole
 * payload or the job name. Every case is invalid by construction and carries the fields its
 * failedReason may name (a broken `hidden` may surface as `data.end` when the range no longer fits),
 * so a test can check that the reason names what was broken, not merely that the job failed.
 *
 * Two levels of breakage: `schema` (the zod contract refuses it anywhere) and `worker` (valid to the
 * schema, refused by the shard worker: an unknown or non-finite snapshot, a hidden size that does not
 * fit the snapshot, indices that do not decode). Parents in the reduce queue never load a snapshot or
 * decode a batch before their children are in, so they get schema-level breakage only.
 */
import fc from 'fast-check';
import { CONTRACT_VERSION, MAX_HIDDEN } from '../../src/core/contract.js';
import { i32ToBase64 } from '../../src/queue/codec.js';

export type QueueName = 'shards' | 'reduce';

export interface BadJob {
  readonly queue: QueueName;
  readonly name: string;
  readonly data: unknown;
  /** Top-level fields the failedReason may name (`data.<root>…`), 'job name', or 'any' for junk data. */
  readonly roots: readonly string[] | 'any';
  /** What was broken, for a failure report. */
  readonly what: string;
}

/** The snapshots a test stored (versions), so `worker`-level cases can point at them. */
export interface Snapshots {
  /** H = 10, finite: the one valid snapshot. */
  readonly valid: string;
  /** Snapshots the worker must refuse: NaN, ±Infinity, bytes that are not whole float64, a length that fits no H, empty. */
  readonly refused: readonly string[];
}

export const HIDDEN = 10;
export const COORDS = 795 * HIDDEN + 10;
export const BATCH = Int32Array.from({ length: 20 }, (_, k) => (k * 2_999) % 60_000);

const ABSENT = Symbol('absent');
const seeded = { kind: 'seeded', seed: 1, step: 0, size: 20 };
type Value = unknown;

interface Mutation {
  readonly field: string;
  readonly value: Value;
  readonly roots: readonly string[];
  readonly level: 'schema' | 'worker';
  /** Other fields set with it (so a later breakage cannot make the pair valid again). */
  readonly also?: Record<string, Value>;
}

/** Sets a key as an own, enumerable property — also `__proto__`, which plain assignment would turn into a prototype. */
function put(o: Record<string, unknown>, key: string, value: Value): void {
  if (value === ABSENT) delete o[key];
  else Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

function clone(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) put(out, k, o[k]);
  return out;
}

// ---- values ---------------------------------------------------------------------------------------

/** NaN and ±Infinity: JSON (and so BullMQ) turns each into null. */
const nonFinite = fc.constantFrom(NaN, Infinity, -Infinity);
/** Huge strings: 300 kB to 2 MB, of base64 characters so only the length is wrong. */
const hugeString = fc.integer({ min: 300_000, max: 2_000_000 }).map((n) => 'A'.repeat(n));
const smallString = fc.string({ maxLength: 12 });
/** Nested arrays or objects 50 to 3000 levels deep. */
const deep = fc.tuple(fc.integer({ min: 50, max: 3_000 }), fc.boolean()).map(([depth, arrays]) => {
  let v: unknown = 0;
  for (let d = 0; d < depth; d++) v = arrays ? [v] : { x: v };
  return v;
});
/** Anything that is not a number (for a numeric field). */
const notNumber: fc.Arbitrary<Value> = fc.oneof(
  smallString,
  fc.boolean(),
  fc.constant(null),
  nonFinite,
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.stringMatching(/^[a-z]{1,4}$/), fc.integer(), { maxKeys: 2 }),
  fc.constant(ABSENT),
  deep,
);
/** Anything that is not a string (for a string field). */
const notString: fc.Arbitrary<Value> = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(smallString, { maxLength: 3 }), fc.constant({}), fc.constant(ABSENT), deep);
const fraction = fc.double({ min: -1e7, max: 1e7, noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x));
const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);

// ---- mutations per field ---------------------------------------------------------------------------

const m = (field: string, value: fc.Arbitrary<Value>, roots: readonly string[] = [field], level: 'schema' | 'worker' = 'schema'): fc.Arbitrary<Mutation> =>
  value.map((v) => ({ field, value: v, roots, level }));

const badV = m('v', fc.oneof(fc.integer().filter((x) => x !== CONTRACT_VERSION), fraction, notNumber));
const badParamsFormat = m(
  'params',
  fc.oneof(
    smallString,
    hex64.map((h) => h.toUpperCase().replace(/^[0-9]/, 'A')),
    hex64.map((h) => h.slice(1)),
    hex64.map((h) => `${h}0`),
    hugeString,
    notString,
  ),
);
const badHiddenSchema = m('hidden', fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: MAX_HIDDEN + 1 }), fc.constant(1e9), fraction, notNumber), ['hidden', 'end', 'batch']);
const badH = m('h', fc.oneof(fc.double({ max: 0, noNaN: true }), fc.double({ min: 1, minExcluded: true, noNaN: true }), nonFinite, notNumber));
const badHolder = m('holder', fc.oneof(fc.constant(''), fc.string({ minLength: 201, maxLength: 400 }), hugeString, notString));
const badTtl = m('resultTtl', fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 7 * 24 * 3600 + 1 }), fraction, notNumber.filter((v) => v !== ABSENT)));

/** A batch the schema refuses (wrong shape, kind, count, size, seed, an extra key, a base64 string too long or not base64). */
const badBatchSchema = m(
  'batch',
  fc.oneof(
    notString.filter((v) => v !== ABSENT),
    smallString,
    fc.record({ kind: smallString.filter((k) => k !== 'indices' && k !== 'seeded') }),
    fc.record({ kind: fc.constant('indices'), count: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 60_001 }), fraction, notNumber.filter((v) => v !== ABSENT)), indices: fc.constant(i32ToBase64(BATCH)) }),
    fc.record({ kind: fc.constant('indices'), count: fc.constant(20), indices: fc.oneof(fc.stringMatching(/^[A-Za-z0-9+/]*[!@#%^&*(). ~-][A-Za-z0-9+/]*$/), hugeString, notString.filter((v) => v !== ABSENT)) }),
    fc.record({ kind: fc.constant('seeded'), seed: fc.oneof(fc.integer({ max: -1 }), fraction, notNumber.filter((v) => v !== ABSENT)), step: fc.constant(0), size: fc.constant(20) }),
    fc.record({ kind: fc.constant('seeded'), seed: fc.constant(1), step: fc.oneof(fc.integer({ max: -1 }), fraction), size: fc.constant(20) }),
    fc.record({ kind: fc.constant('seeded'), seed: fc.constant(1), step: fc.constant(0), size: fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 60_001 }), fraction) }),
    fc.record({ kind: fc.constant('seeded'), seed: fc.constant(1), step: fc.constant(0), size: fc.constant(20), extra: fc.jsonValue({ maxDepth: 2 }) }),
    // A prototype-polluting key one level down.
    fc.constant(JSON.parse('{"__proto__": {"polluted": true}, "kind": "seeded", "seed": 1, "step": 0, "size": 20}') as unknown),
  ),
  ['batch', 'end'],
);
/** Batches the schema accepts but the worker cannot decode: fewer or more indices than their count, an index outside the training set. */
const badBatchDecode = m(
  'batch',
  fc.oneof(
    fc.integer({ min: 1, max: 60_000 }).filter((c) => c !== BATCH.length).map((count) => ({ kind: 'indices', count, indices: i32ToBase64(BATCH) })),
    fc
      .tuple(fc.array(fc.integer({ min: 0, max: 59_999 }), { minLength: 0, maxLength: 10 }), fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 60_000, max: 2 ** 31 - 1 })), fc.nat())
      .map(([ok, bad, at]) => {
        const idx = [...ok];
        idx.splice(at % (ok.length + 1), 0, bad);
        return { kind: 'indices', count: idx.length, indices: i32ToBase64(Int32Array.from(idx)) };
      }),
  ),
  ['batch', 'end'],
  'worker',
);

/** An extra top-level key: random names, and the reserved ones (`__proto__`, `constructor`, `prototype`). */
const extraKey = (known: readonly string[]): fc.Arbitrary<Mutation> =>
  fc
    .tuple(fc.oneof(fc.stringMatching(/^[A-Za-z_$][A-Za-z0-9_$]{0,15}$/).filter((k) => !known.includes(k)), fc.constantFrom('__proto__', 'constructor', 'prototype')), fc.oneof(fc.jsonValue({ maxDepth: 3 }), deep, hugeString))
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ({ field: k, value: k === '__proto__' ? { polluted: true } : v, roots: [k], level: 'schema' as const }));

// ---- bases ------------------------------------------------------------------------------------------

interface Kind {
  readonly queue: QueueName;
  readonly name: string;
  readonly base: (s: Snapshots) => Record<string, unknown>;
  readonly mutations: (s: Snapshots) => fc.Arbitrary<Mutation>[];
  /** Fields a failure may name whatever was broken (train-step's run never exists here). */
  readonly alwaysRoots?: readonly string[];
}

const fdFields = ['v', 'params', 'hidden', 'batch', 'h', 'start', 'end'];
const ceFields = ['v', 'params', 'hidden', 'split', 'batch', 'start', 'end'];
const gradFields = ['v', 'params', 'hidden', 'batch', 'h', 'holder', 'resultTtl'];
const evalFields = ['v', 'params', 'hidden', 'split', 'batch', 'holder', 'run'];
const stepFields = ['v', 'run', 'step', 'params'];

/** Snapshot-level breakage for shards: an unknown version, a refused snapshot, an H that does not fit the snapshot. */
const workerLevel = (s: Snapshots): fc.Arbitrary<Mutation>[] => [
  m('params', hex64.filter((h) => h !== s.valid && !s.refused.includes(h)), ['params'], 'worker'),
  m('params', fc.constantFrom(...s.refused), ['params'], 'worker'),
  m('hidden', fc.integer({ min: 1, max: MAX_HIDDEN }).filter((h) => h !== HIDDEN), ['hidden', 'end', 'batch'], 'worker'),
];

const KINDS: Kind[] = [
  {
    queue: 'shards',
    name: 'fd-shard',
    base: (s) => ({ v: CONTRACT_VERSION, params: s.valid, hidden: HIDDEN, batch: { kind: 'indices', count: BATCH.length, indices: i32ToBase64(BATCH) }, h: 1e-4, start: 0, end: 100 }),
    mutations: (s) => [
      badV, badParamsFormat, badHiddenSchema, badH, badBatchSchema, badBatchDecode, extraKey(fdFields), ...workerLevel(s),
      m('start', fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 100 }), fraction, notNumber), ['start', 'end']),
      m('end', fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: COORDS + 1 }), fc.constant(1e12), fraction, notNumber), ['end']),
    ],
  },
  {
    queue: 'shards',
    name: 'ce-shard',
    base: (s) => ({ v: CONTRACT_VERSION, params: s.valid, hidden: HIDDEN, split: 'batch', batch: seeded, start: 0, end: 20 }),
    mutations: (s) => [
      badV, badParamsFormat, badHiddenSchema, badBatchSchema, badBatchDecode, extraKey(ceFields), ...workerLevel(s),
      m('split', fc.oneof(smallString.filter((x) => !['train', 'test', 'batch'].includes(x)), fc.constantFrom('train', 'test'), notString), ['split', 'batch', 'end']),
      m('start', fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 20 }), fraction, notNumber), ['start', 'end']),
      m('end', fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 21 }), fraction, notNumber), ['end']),
    ],
  },
  {
    queue: 'reduce',
    name: 'gradient',
    base: (s) => ({ v: CONTRACT_VERSION, params: s.valid, hidden: HIDDEN, batch: seeded, h: 1e-4, holder: 'fuzz' }),
    mutations: () => [badV, badParamsFormat, badHiddenSchema, badH, badBatchSchema, badHolder, badTtl, extraKey(gradFields)],
  },
  {
    queue: 'reduce',
    name: 'evaluation',
    base: (s) => ({ v: CONTRACT_VERSION, params: s.valid, hidden: HIDDEN, split: 'batch', batch: seeded, holder: 'fuzz' }),
    mutations: () => [
      badV, badParamsFormat, badHiddenSchema, badBatchSchema, badHolder, extraKey(evalFields),
      m('split', fc.oneof(smallString.filter((x) => !['train', 'test', 'batch'].includes(x)), notString), ['split', 'batch']),
      // A whole split with a batch: refused only because the batch is there, so the batch is set with it.
      fc.constantFrom('train', 'test').map((split) => ({ field: 'split', value: split, roots: ['split', 'batch'], level: 'schema' as const, also: { batch: seeded } })),
      m('batch', fc.constant(ABSENT), ['batch']),
      m('run', fc.oneof(fc.record({ id: fc.stringMatching(/^[^A-Za-z0-9_-]{1,8}$/), iter: fc.constant(0) }), fc.record({ id: fc.constant('r'), iter: fc.oneof(fc.integer({ max: -1 }), fraction) }), fc.constant({ id: 'r' }), notString.filter((v) => v !== ABSENT))),
    ],
  },
  {
    queue: 'reduce',
    name: 'train-step',
    base: (s) => ({ v: CONTRACT_VERSION, run: 'no-such-run', step: 0, params: s.valid }),
    alwaysRoots: ['run'],
    mutations: () => [
      badV, badParamsFormat, extraKey(stepFields),
      m('run', fc.oneof(fc.constant(''), fc.string({ minLength: 65, maxLength: 100 }), fc.stringMatching(/^[^A-Za-z0-9_-]{1,8}$/), notString)),
      m('step', fc.oneof(fc.integer({ max: -1 }), fraction, notNumber)),
    ],
  },
];

/** One kind's base with 1–3 breakages (worker-level ones only in the shards queue). */
function brokenJob(kind: Kind, s: Snapshots): fc.Arbitrary<BadJob> {
  return fc.array(fc.oneof(...kind.mutations(s)), { minLength: 1, maxLength: 3 }).map((list) => {
    const data = clone(kind.base(s));
    const roots = new Set<string>(kind.alwaysRoots ?? []);
    const touched = new Set<string>();
    const applied: Mutation[] = [];
    for (const mu of list) {
      // One breakage per field: a second one could undo the first (split "test" with its batch removed is valid).
      const fields = [mu.field, ...Object.keys(mu.also ?? {})];
      if (fields.some((f) => touched.has(f))) continue;
      fields.forEach((f) => touched.add(f));
      put(data, mu.field, mu.value);
      for (const [f, v] of Object.entries(mu.also ?? {})) put(data, f, v);
      mu.roots.forEach((r) => roots.add(r));
      applied.push(mu);
    }
    const what = applied.map((mu) => `${mu.field}${mu.level === 'worker' ? ' (worker)' : ''}`).join(', ');
    return { queue: kind.queue, name: kind.name, data, roots: [...roots], what };
  });
}

/** Junk in place of the whole payload: any JSON value, deep nesting, a huge string. */
const junkData: fc.Arbitrary<BadJob> = fc
  .tuple(fc.constantFrom(...KINDS), fc.oneof(fc.jsonValue({ maxDepth: 3 }), deep, hugeString))
  .map(([kind, data]) => ({ queue: kind.queue, name: kind.name, data, roots: 'any' as const, what: 'whole payload' }));

/** A job name neither queue knows. */
const badName = (s: Snapshots): fc.Arbitrary<BadJob> =>
  fc
    .tuple(fc.constantFrom<QueueName>('shards', 'reduce'), fc.oneof(smallString, fc.constantFrom('FD-SHARD', 'fd-shard ', 'gradients', '__proto__', 'constructor')))
    .filter(([q, name]) => !(q === 'shards' ? ['fd-shard', 'ce-shard'] : ['gradient', 'evaluation', 'train-step']).includes(name))
    .map(([queue, name]) => ({ queue, name, data: KINDS[queue === 'shards' ? 0 : 2].base(s), roots: ['job name'], what: `job name ${JSON.stringify(name)}` }));

/** The mix of bad jobs: mostly one kind's payload broken in a few fields, some junk payloads and names. */
export function badJobs(s: Snapshots): fc.Arbitrary<BadJob> {
  return fc.oneof(
    { arbitrary: fc.oneof(...KINDS.map((k) => brokenJob(k, s))), weight: 16 },
    { arbitrary: junkData, weight: 2 },
    { arbitrary: badName(s), weight: 1 },
  );
}

/**
 * What a failedReason must look like: `<op>: data[.field…|[i]…] must be …` or `<op>: job name must be …`.
 * Field names here are the contract's, the reserved keys, or generated from [A-Za-z0-9_$].
 */
export const REASON = /^(fd-shard|ce-shard|gradient|evaluation|train-step|shard|reduce|decode|batch): (data((\.[\w$]+)|\[\d+\])*|job name) must be /;

/** The top-level field a reason names (`params` for `data.params[17]`), `job name`, or `data` for the whole payload. */
export function namedRoot(reason: string): string | undefined {
  const r = /^[\w-]+: (job name|data(?:\.([\w$]+))?)/.exec(reason);
  if (r === null) return undefined;
  return r[1] === 'job name' ? 'job name' : (r[2] ?? 'data');
}
