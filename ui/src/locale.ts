// Imported first by main.tsx, before anything that formats numbers at load time: uPlot
// builds `new Intl.NumberFormat(navigator.language)` when its module loads, and WebKitGTK
// reports the POSIX locale of a process started with LANG=C (or C.UTF-8, or none) as
// `navigator.language === "C"`, which is no BCP 47 tag, so that line threw a RangeError
// and the desktop window stayed at "Starting the SutazAI dashboard…". Such a language is
// replaced by a valid one here.

/** `tag` when Intl accepts it as a language tag (and it is no POSIX locale name), otherwise `fallback`. */
export function usableLanguage(tag: unknown, fallback = "en-US"): string {
  if (typeof tag !== "string" || tag === "" || /^(c|posix)([._@]|$)/i.test(tag)) return fallback;
  try {
    return Intl.getCanonicalLocales(tag)[0] ?? fallback;
  } catch {
    return fallback;
  }
}

if (typeof navigator !== "undefined") {
  const reported = navigator.language;
  const language = usableLanguage(reported);
  if (language !== reported) {
    const languages = (navigator.languages ?? []).map((l) => usableLanguage(l, "")).filter((l) => l !== "");
    Object.defineProperty(navigator, "language", { configurable: true, get: () => language });
    Object.defineProperty(navigator, "languages", {
      configurable: true,
      get: () => (languages.length > 0 ? languages : [language]),
    });
  }
}
