// An I/O-bound function: one request to a local HTTP stub (args.port) that answers after its delay.
export const name = 'http-stub';
export async function f(x, args) {
  const r = await fetch(`http://127.0.0.1:${args.port}/?s=${x.reduce((a, v) => a + v, 0)}`);
  return Number(await r.text());
}
