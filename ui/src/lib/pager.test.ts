import { describe, expect, it } from "vitest";
import { Pager } from "./pager";

function source(total: number) {
  const asked: Array<[number, number]> = [];
  let rows = Array.from({ length: total }, (_, i) => `row ${i}`);
  return {
    asked,
    set(next: string[]) {
      rows = next;
    },
    fetch: async (offset: number, limit: number) => {
      asked.push([offset, limit]);
      return { total: rows.length, rows: rows.slice(offset, offset + limit) };
    },
  };
}

describe("Pager", () => {
  it("asks only for the blocks on screen, each once", async () => {
    const s = source(10_000);
    const pager = new Pager(s.fetch, () => {}, { blockSize: 100 });
    await pager.show(0, 30);
    expect(s.asked).toEqual([[0, 100]]);
    expect(pager.total).toBe(10_000);
    expect(pager.get(29)).toBe("row 29");
    expect(pager.get(150)).toBeUndefined();
    await Promise.all([pager.show(5_050, 5_080), pager.show(5_050, 5_080)]);
    expect(s.asked).toEqual([
      [0, 100],
      [5_000, 100],
    ]);
    expect(pager.get(5_060)).toBe("row 5060");
  });

  it("keeps a bounded number of blocks, dropping the least recently shown", async () => {
    const s = source(10_000);
    const pager = new Pager(s.fetch, () => {}, { blockSize: 100, maxBlocks: 3 });
    for (const at of [0, 1_000, 2_000, 3_000, 4_000]) await pager.show(at, at + 50);
    expect(pager.kept).toBe(3);
    expect(pager.get(0)).toBeUndefined();
    expect(pager.get(4_010)).toBe("row 4010");
  });

  it("on a change, asks again for what is on screen and shows the old rows meanwhile", async () => {
    const s = source(300);
    const pager = new Pager(s.fetch, () => {}, { blockSize: 100 });
    await pager.show(120, 150);
    s.set(["new", ...Array.from({ length: 300 }, (_, i) => `row ${i}`)]);
    const again = pager.invalidate();
    expect(pager.get(120)).toBe("row 120");
    await again;
    expect(pager.get(120)).toBe("row 119");
    expect(pager.total).toBe(301);
    expect(s.asked.at(-1)).toEqual([100, 100]);
  });

  it("when an append-only list grows, asks again only for the short block at its old end", async () => {
    const s = source(250);
    const pager = new Pager(s.fetch, () => {}, { blockSize: 100 });
    await pager.show(0, 300);
    expect(s.asked).toEqual([
      [0, 100],
      [100, 100],
      [200, 100],
    ]);
    s.set(Array.from({ length: 330 }, (_, i) => `row ${i}`));
    await pager.grew(330);
    // Blocks 0 and 1 were whole: nothing in them can have changed.
    expect(s.asked.slice(3)).toEqual([[200, 100]]);
    expect(pager.get(299)).toBe("row 299");
    expect(pager.total).toBe(330);
    await pager.show(250, 400);
    expect(s.asked.slice(4)).toEqual([[300, 100]]);
    expect(pager.get(329)).toBe("row 329");
  });

  it("drops an answer that a reset made obsolete", async () => {
    const waiting: Array<() => void> = [];
    let calls = 0;
    const pager = new Pager(
      async () => {
        const call = ++calls;
        if (call === 1) await new Promise<void>((r) => waiting.push(r));
        return { total: 1, rows: [call === 1 ? "before the new filter" : "after it"] };
      },
      () => {},
      { blockSize: 10 },
    );
    const first = pager.show(0, 5);
    const reset = pager.reset();
    await reset;
    waiting.forEach((release) => release());
    await first;
    expect(pager.get(0)).toBe("after it");
  });

  it("does not ask again for a block that failed until told to retry", async () => {
    let calls = 0;
    const pager = new Pager(
      async () => {
        calls++;
        if (calls === 1) throw new Error("database is locked");
        return { total: 1, rows: ["row"] };
      },
      () => {},
      { blockSize: 10 },
    );
    await pager.show(0, 5);
    await pager.show(0, 6);
    expect(calls).toBe(1);
    expect(pager.error).toBeInstanceOf(Error);
    await pager.invalidate();
    expect(calls).toBe(2);
    expect(pager.error).toBeNull();
    expect(pager.get(0)).toBe("row");
  });
});
