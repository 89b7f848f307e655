import { describe, expect, it } from "vitest";
import { isValidLanguage } from "./locale";

describe("isValidLanguage", () => {
  it("accepts BCP 47 tags and refuses the POSIX locale names WebKitGTK may report", () => {
    expect(isValidLanguage("en-US")).toBe(true);
    expect(isValidLanguage("de")).toBe(true);
    expect(isValidLanguage("C")).toBe(false);
    expect(isValidLanguage("")).toBe(false);
    expect(isValidLanguage(undefined)).toBe(false);
  });
});
