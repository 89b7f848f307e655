// Imported first by main.tsx. WebKitGTK reports the POSIX locale ("C") as
// `navigator.language` when LANG is unset, and Intl rejects it ("invalid language tag: C").
// uPlot builds an Intl.NumberFormat from `navigator.language` when its module loads, so
// the whole dashboard would stop before rendering. An invalid tag is replaced by en-US
// before any other module runs.

/** Whether Intl accepts `tag` as a language tag. */
export function isValidLanguage(tag: string | undefined): boolean {
  if (!tag) return false;
  try {
    new Intl.NumberFormat(tag);
    return true;
  } catch {
    return false;
  }
}

if (typeof navigator !== "undefined" && !isValidLanguage(navigator.language)) {
  Object.defineProperty(navigator, "language", { value: "en-US", configurable: true });
  Object.defineProperty(navigator, "languages", { value: ["en-US"], configurable: true });
}
