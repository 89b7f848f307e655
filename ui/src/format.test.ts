// Formatting helpers: units, rounding and the "not reported" dash; the page's language.

import { describe, expect, it } from "vitest";
import { ago, bytes, count, dateTime, duration, elapsed, humanize, NONE, num, percent, rate, ratio, shortId } from "./format";
import { usableLanguage } from "./locale";

describe("format", () => {
  it("shows percent and fractions", () => {
    expect(percent(87.456)).toBe("87.5 %");
    expect(percent(3, 0)).toBe("3 %");
    expect(ratio(0.934)).toBe("93.4 %");
    expect(ratio(null)).toBe(NONE);
    expect(percent(Number.NaN)).toBe(NONE);
  });

  it("shows bytes in binary units", () => {
    expect(bytes(0)).toBe("0 B");
    expect(bytes(1023)).toBe("1023 B");
    expect(bytes(1536)).toBe("1.5 KiB");
    expect(bytes(25_276_063_744)).toBe("23.5 GiB");
    expect(bytes(270_553_174_016)).toBe("252 GiB");
    expect(bytes(-1)).toBe(NONE);
    expect(rate(2048)).toBe("2.0 KiB/s");
    expect(rate(undefined)).toBe(NONE);
  });

  it("shows durations at a fitting scale", () => {
    expect(duration(0.35)).toBe("350 ms");
    expect(duration(4.256)).toBe("4.26 s");
    expect(duration(42.25)).toBe("42.3 s");
    expect(duration(245)).toBe("4 min 05 s");
    expect(duration(3 * 3600 + 12 * 60 + 40)).toBe("3 h 12 min");
    expect(duration(2 * 86_400 + 4 * 3600)).toBe("2 d 4 h");
    expect([duration(300), duration(7200), duration(86_400 * 7)]).toEqual(["5 min", "2 h", "7 d"]);
    expect(duration(null)).toBe(NONE);
    expect(duration(-3)).toBe(NONE);
  });

  it("measures elapsed time and how long ago", () => {
    const now = Date.parse("2026-11-24T12:00:00Z");
    expect(elapsed("2026-11-24T11:59:30Z", "2026-11-24T12:00:00Z")).toBe(30);
    expect(elapsed("2026-11-24T11:59:00Z", null, now)).toBe(60);
    expect(elapsed(undefined, "2026-11-24T12:00:00Z")).toBeNull();
    expect(ago("2026-11-24T11:59:58Z", now)).toBe("just now");
    expect(ago("2026-11-24T11:59:18Z", now)).toBe("42 s ago");
    expect(ago("2026-11-24T11:55:00Z", now)).toBe("5 min ago");
    expect(ago("2026-11-24T09:00:00Z", now)).toBe("3 h ago");
    expect(ago("2026-11-22T12:00:00Z", now)).toBe("2 d ago");
    expect(ago("2026-11-24T12:05:00Z", now)).toBe("in the future");
    expect(ago("not a date", now)).toBe(NONE);
  });

  it("shows local date-times", () => {
    const d = new Date(2026, 10, 24, 7, 5, 9);
    expect(dateTime(d.toISOString())).toBe("2026-11-24 07:05:09");
    expect(dateTime(null)).toBe(NONE);
  });

  it("groups counts and trims numbers", () => {
    expect(count(12345)).toBe("12,345");
    expect(count(2_500_000)).toBe("2.5 M");
    expect(count(undefined)).toBe(NONE);
    expect(num(1.5)).toBe("1.5");
    expect(num(1.23456, 3)).toBe("1.235");
  });

  it("writes identifiers for people", () => {
    expect(humanize("specialized_ai")).toBe("Specialized AI");
    expect(humanize("core_intelligence")).toBe("Core intelligence");
    expect(humanize("")).toBe(NONE);
    expect(shortId("0193a5b2-7c4d-7e21-9a10-8b2f4c6d1e0f")).toBe("4c6d1e0f");
    expect(shortId("short")).toBe("short");
  });
});

describe("usableLanguage", () => {
  it("keeps language tags and replaces the POSIX locale WebKitGTK reports under LANG=C", () => {
    expect(usableLanguage("de-DE")).toBe("de-DE");
    expect(usableLanguage("en-us")).toBe("en-US");
    for (const bad of ["C", "POSIX", "C.UTF-8", "", undefined, 42]) expect(usableLanguage(bad), String(bad)).toBe("en-US");
    expect(usableLanguage("C", "")).toBe("");
    // What uPlot does with the result while it loads.
    expect(() => new Intl.NumberFormat(usableLanguage("C"))).not.toThrow();
    expect(() => new Intl.NumberFormat("C")).toThrow(RangeError);
  });
});
