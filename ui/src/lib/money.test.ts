import { describe, expect, it } from "vitest";
import { formatTokens, formatUsd, formatUsdAxis, sumMicros } from "./money";

describe("formatUsd", () => {
  it("keeps every micro-dollar", () => {
    expect(formatUsd(29)).toBe("$0.000029");
    expect(formatUsd(1)).toBe("$0.000001");
    expect(formatUsd(1_234_567)).toBe("$1.234567");
    expect(formatUsd(116_160)).toBe("$0.11616");
  });

  it("shows at least cents", () => {
    expect(formatUsd(0)).toBe("$0.00");
    expect(formatUsd(1_500_000)).toBe("$1.50");
    expect(formatUsd(10_000)).toBe("$0.01");
    expect(formatUsd(250_000_000)).toBe("$250.00");
  });

  it("groups thousands of dollars and signs debts", () => {
    expect(formatUsd(1_234_567_890_123)).toBe("$1,234,567.890123");
    expect(formatUsd(-2_500)).toBe("−$0.0025");
  });

  it("formats amounts beyond float precision exactly (bigint)", () => {
    expect(formatUsd(9_007_199_254_740_993n)).toBe("$9,007,199,254.740993");
  });

  it("is exact where adding floats is not", () => {
    // 0.1 + 0.2 dollars as floats is 0.30000000000000004; as micro-dollars it is exact.
    const total = sumMicros([100_000, 200_000]);
    expect(formatUsd(total)).toBe("$0.30");
    expect(formatUsd(sumMicros(Array(1000).fill(29)))).toBe("$0.029");
  });
});

describe("formatUsdAxis", () => {
  it("labels chart axes compactly", () => {
    expect(formatUsdAxis(0)).toBe("$0");
    expect(formatUsdAxis(20_000)).toBe("$0.02");
    expect(formatUsdAxis(1_234)).toBe("$0.0012");
    expect(formatUsdAxis(5)).toBe("$0.000005");
  });
});

describe("formatTokens", () => {
  it("groups digits", () => {
    expect(formatTokens(88_654)).toBe("88,654");
    expect(formatTokens(7)).toBe("7");
  });
});
