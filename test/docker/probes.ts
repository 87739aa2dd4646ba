/**
 * What the Docker test looks at inside the stack: which worker container holds a shard job, the
 * round-trip time from a worker to Redis, netem on a worker's interface, step times from samples.
 */
import { mustSh, sh, type Stack } from './stack.js';

/**
 * The newest run's step and its active shard jobs with the container each runs in, read in one Lua
 * call (atomic: a shard job lives ~100 ms, so separate reads would see it gone). The workers name
 * themselves `<hostname>:<pid>` (BullMQ stores it as the job's processedBy, `pb`); a container's
 * hostname is the first 12 characters of its id. Keys: src/queue/keys.ts and BullMQ's, prefix `numgrad`.
 */
const PROBE = `local id = redis.call('ZREVRANGE', 'numgrad:ng:runs', 0, 0)[1]
if not id then return {} end
local out = {id, redis.call('HGET', 'numgrad:ng:run:' .. id, 'step') or '-1'}
for _, j in ipairs(redis.call('LRANGE', 'numgrad:shards:active', 0, -1)) do
  local pb = redis.call('HGET', 'numgrad:shards:' .. j, 'pb')
  if pb then out[#out + 1] = j; out[#out + 1] = pb end
end
return out`;

export function probeRun(stack: Stack): { run: string; step: number; held: { job: string; container: string }[] } | undefined {
  const [run, step, ...rest] = stack.redis('EVAL', PROBE, '0').split('\n').filter(Boolean);
  if (run === undefined) return undefined;
  const workers = stack.containers('worker');
  const held: { job: string; container: string }[] = [];
  for (let i = 0; i + 1 < rest.length; i += 2) {
    const host = rest[i + 1].split(':')[0];
    const container = workers.find((c) => host.length >= 12 && c.startsWith(host));
    if (container) held.push({ job: rest[i], container });
  }
  return { run, step: Number(step), held };
}

/** Waits until the newest run is at `minStep` or later and a worker container holds a shard job of it. */
export async function holderInFlight(stack: Stack, minStep: number, timeoutMs: number): Promise<{ container: string; jobs: string[]; step: number }> {
  return stack.waitFor(`a worker holding shard jobs at step ≥ ${minStep}`, timeoutMs, () => {
    const p = probeRun(stack);
    if (p === undefined || p.step < minStep || p.held.length === 0) return undefined;
    const container = p.held[0].container;
    return { container, jobs: p.held.filter((h) => h.container === container).map((h) => h.job), step: p.step };
  }, 5);
}

/**
 * Round-trip time from a worker container to Redis, in ms: the median over 20 `PING`s on one TCP
 * connection (answered by -NOAUTH, which is as fast as PONG), measured by node inside the container.
 */
export function redisRttMs(container: string): number {
  const script = `const s=require('net').connect(6379,'redis');const t=[];let t0;
const ping=()=>{t0=process.hrtime.bigint();s.write('PING\\r\\n')};
s.on('connect',ping);s.on('data',()=>{t.push(Number(process.hrtime.bigint()-t0)/1e6);if(t.length<20)ping();else{t.sort((a,b)=>a-b);console.log(t[10]);s.destroy()}});`;
  return Number(mustSh('docker', ['exec', container, 'node', '-e', script], { timeoutMs: 60_000 }).trim());
}

/**
 * Adds `ms` of delay to everything a worker container sends (so to its round trip to Redis) with tc
 * netem, run from the host in the container's network namespace (nsenter -n): the host's iproute2,
 * no NET_ADMIN granted to the container, nothing added to the image. 0 removes it.
 */
export function setDelay(stack: Stack, container: string, ms: number): void {
  const pid = stack.inspect(container, '{{.State.Pid}}');
  // eth0, or eth1 after a `docker network disconnect` and `connect`: the one interface besides lo.
  const dev = mustSh('nsenter', ['-t', pid, '-n', 'ip', '-o', 'link', 'show']).split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).find((d) => d !== undefined && d !== 'lo');
  if (dev === undefined) throw new Error(`no network interface in container ${container.slice(0, 12)}`);
  const base = ['-t', pid, '-n', 'tc', 'qdisc'];
  sh('nsenter', [...base, 'del', 'dev', dev, 'root']);
  if (ms > 0) mustSh('nsenter', [...base, 'add', 'dev', dev, 'root', 'netem', 'delay', `${ms}ms`]);
}

/** Whether the kernel has netem (CONFIG_NET_SCH_NETEM): tried on the container's interface, then removed. */
export function hasNetem(stack: Stack, container: string): { ok: boolean; why: string } {
  try {
    setDelay(stack, container, 1);
    setDelay(stack, container, 0);
    return { ok: true, why: '' };
  } catch (err) {
    return { ok: false, why: (err instanceof Error ? err.message : String(err)).split('\n').filter(Boolean).slice(-1)[0] ?? '' };
  }
}

/** ms per step between the first samples at or past steps `from` and `to`. */
export function stepMs(samples: [number, number][], from: number, to: number): number {
  const a = samples.find(([, s]) => s >= from);
  const b = samples.find(([, s]) => s >= to);
  if (a === undefined || b === undefined || b[1] === a[1]) throw new Error(`no samples spanning steps ${from}..${to}`);
  return (b[0] - a[0]) / (b[1] - a[1]);
}
