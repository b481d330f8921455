// Rows of a long list asked for a block at a time, as a virtual list shows them: the list says
// which rows are on screen, the pager asks the backend for the blocks that hold them (each once,
// never more than one request per block at a time), and keeps a bounded number of blocks, the
// least recently shown dropped first. Live changes invalidate what is kept; the blocks on screen
// are asked for again, and the rows already shown stay until their fresh copies arrive.

export interface Page<T> {
  /** How many rows the list has in all. */
  total: number;
  /** The rows from the block's first. */
  rows: T[];
}

export type FetchPage<T> = (offset: number, limit: number) => Promise<Page<T>>;

export interface PagerOptions {
  /** Rows per request. */
  blockSize?: number;
  /** Blocks kept at most. */
  maxBlocks?: number;
}

interface Block<T> {
  rows: T[];
  /** A newer answer is wanted (the list changed since this was read). */
  stale: boolean;
  used: number;
}

export class Pager<T> {
  readonly blockSize: number;
  private readonly maxBlocks: number;
  private blocks = new Map<number, Block<T>>();
  private inFlight = new Map<number, { generation: number; promise: Promise<void> }>();
  /** Blocks whose last request failed: asked again only on `invalidate` (a retry), not on every scroll. */
  private failed = new Set<number>();
  private generation = 0;
  private tick = 0;
  private view: [number, number] = [0, 0];
  /** How many rows there are, as last answered (`null` before any answer). */
  total: number | null = null;
  /** The last failure, until a request succeeds. */
  error: unknown = null;

  constructor(
    private readonly fetchPage: FetchPage<T>,
    private readonly onChange: () => void,
    options: PagerOptions = {},
  ) {
    this.blockSize = options.blockSize ?? 100;
    this.maxBlocks = Math.max(2, options.maxBlocks ?? 20);
  }

  /**
   * The row at `index`, if its block is here (possibly stale). `_version` is not used: passing
   * the version the `onChange` callback bumps makes a reactive template read again on change.
   */
  at(index: number, _version: number): T | undefined {
    return this.get(index);
  }

  /** The row at `index`, if its block is here (possibly stale). */
  get(index: number): T | undefined {
    const block = this.blocks.get(Math.floor(index / this.blockSize));
    return block?.rows[index % this.blockSize];
  }

  /** The list shows rows `[from, to)`: asks for the blocks it lacks (or holds stale). */
  show(from: number, to: number): Promise<void> {
    this.view = [Math.max(0, from), Math.max(from, to)];
    const first = Math.floor(this.view[0] / this.blockSize);
    const last = Math.floor(Math.max(this.view[0], this.view[1] - 1) / this.blockSize);
    const waits: Promise<void>[] = [];
    for (let b = first; b <= last; b++) {
      const block = this.blocks.get(b);
      if (block) block.used = ++this.tick;
      if (this.total !== null && b * this.blockSize >= this.total && b > 0) continue;
      if (this.failed.has(b)) continue;
      if (!block || block.stale) waits.push(this.load(b));
    }
    return Promise.all(waits).then(() => undefined);
  }

  /** The list changed (a live signal): what is kept is stale; the rows on screen are asked for again. */
  invalidate(): Promise<void> {
    this.generation++;
    for (const block of this.blocks.values()) block.stale = true;
    this.inFlight.clear();
    this.failed.clear();
    return this.show(this.view[0], this.view[1]);
  }

  /**
   * An append-only list (a run's events) grew to `total` rows. Rows kept cannot have changed:
   * only a block that was short (the list's old end) is asked for again, if it is on screen.
   */
  grew(total: number): Promise<void> {
    this.generation++;
    this.total = total;
    for (const block of this.blocks.values()) if (block.rows.length < this.blockSize) block.stale = true;
    this.inFlight.clear();
    this.failed.clear();
    this.onChange();
    return this.show(this.view[0], this.view[1]);
  }

  /** Forgets everything (a new filter): the next answer starts the list afresh. */
  reset(): Promise<void> {
    this.generation++;
    this.blocks.clear();
    this.inFlight.clear();
    this.failed.clear();
    this.total = null;
    this.onChange();
    return this.show(0, Math.max(this.blockSize, this.view[1] - this.view[0]));
  }

  /** Replaces rows already kept for which `update` returns a new value (a live update). */
  patch(update: (row: T, index: number) => T | undefined): void {
    let changed = false;
    for (const [b, block] of this.blocks) {
      block.rows = block.rows.map((row, i) => {
        const next = update(row, b * this.blockSize + i);
        if (next === undefined) return row;
        changed = true;
        return next;
      });
    }
    if (changed) this.onChange();
  }

  /** How many blocks are kept (for tests). */
  get kept(): number {
    return this.blocks.size;
  }

  /** How many rows are held in all. */
  get held(): number {
    let rows = 0;
    for (const block of this.blocks.values()) rows += block.rows.length;
    return rows;
  }

  private load(b: number): Promise<void> {
    const running = this.inFlight.get(b);
    if (running && running.generation === this.generation) return running.promise;
    const generation = this.generation;
    const promise = (async () => {
      try {
        const page = await this.fetchPage(b * this.blockSize, this.blockSize);
        if (generation !== this.generation) return;
        this.total = page.total;
        this.error = null;
        this.blocks.set(b, { rows: page.rows, stale: false, used: ++this.tick });
        this.evict();
      } catch (e) {
        if (generation === this.generation) {
          this.error = e;
          this.failed.add(b);
        }
      } finally {
        // Only this request's own entry goes (an invalidation may have started another).
        if (this.inFlight.get(b)?.generation === generation) this.inFlight.delete(b);
        if (generation === this.generation) this.onChange();
      }
    })();
    this.inFlight.set(b, { generation, promise });
    return promise;
  }

  private evict(): void {
    while (this.blocks.size > this.maxBlocks) {
      let oldest: number | null = null;
      let used = Infinity;
      for (const [b, block] of this.blocks)
        if (block.used < used) {
          used = block.used;
          oldest = b;
        }
      if (oldest === null) return;
      this.blocks.delete(oldest);
    }
  }
}
