/** A tiny LRU of promises, so concurrent jobs of one step share one load or one plan. */
export class Lru<V> {
  private readonly map = new Map<string, Promise<V>>();
  constructor(
    private readonly size: number,
    private readonly onEvict: (value: Promise<V>) => void = () => undefined,
  ) {}

  get(key: string, make: () => Promise<V>): Promise<V> {
    let p = this.map.get(key);
    if (p !== undefined) {
      this.map.delete(key);
      this.map.set(key, p);
      return p;
    }
    p = make();
    p.catch(() => this.map.delete(key));
    this.map.set(key, p);
    while (this.map.size > this.size) {
      const oldest = this.map.keys().next().value as string;
      this.onEvict(this.map.get(oldest) as Promise<V>);
      this.map.delete(oldest);
    }
    return p;
  }

  /** The entry for `key` if there is one (not made, not moved). */
  peek(key: string): Promise<V> | undefined {
    return this.map.get(key);
  }
}
