import { describe, expect, it } from "vitest";
import { formatCount } from "./format";

describe("formatCount", () => {
  it("groups digits by threes as the views show counts", () => {
    expect(formatCount(0)).toBe("0");
    expect(formatCount(999)).toBe("999");
    expect(formatCount(10_000)).toBe("10,000");
    expect(formatCount(43_012)).toBe("43,012");
    expect(formatCount(1_234_567)).toBe("1,234,567");
    expect(formatCount(-1_000)).toBe("-1,000");
    expect(formatCount(12.9)).toBe("12");
  });
});
