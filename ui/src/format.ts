// Formatting helpers: every figure the views show goes through one of these, so units
// and "not reported" (an em dash) look the same everywhere.

export const NONE = "—";

function finite(value: number | null | undefined): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** A value already in percent (`87.5` → `87.5 %`). */
export function percent(value: number | null | undefined, digits = 1): string {
  return finite(value) ? `${value.toFixed(digits)} %` : NONE;
}

/** A fraction 0..1 as percent (`0.934` → `93.4 %`). */
export function ratio(value: number | null | undefined, digits = 1): string {
  return finite(value) ? percent(value * 100, digits) : NONE;
}

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** Bytes in binary units (`1536` → `1.5 KiB`). */
export function bytes(value: number | null | undefined): string {
  if (!finite(value) || value < 0) return NONE;
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < BYTE_UNITS.length - 1) {
    n /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || n >= 100 ? 0 : 1;
  return `${n.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

/** Bytes per second (`2048` → `2.0 KiB/s`). */
export function rate(value: number | null | undefined): string {
  const b = bytes(value);
  return b === NONE ? NONE : `${b}/s`;
}

/** Seconds as a short duration: `350 ms`, `12.3 s`, `4 min 05 s`, `5 min`, `3 h 12 min`, `2 d 4 h`. */
export function duration(seconds: number | null | undefined): string {
  if (!finite(seconds) || seconds < 0) return NONE;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  if (whole < 3600) {
    const m = Math.floor(whole / 60);
    const s = whole % 60;
    return s === 0 ? `${m} min` : `${m} min ${String(s).padStart(2, "0")} s`;
  }
  if (whole < 86_400) {
    const h = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60);
    return m === 0 ? `${h} h` : `${h} h ${String(m).padStart(2, "0")} min`;
  }
  const d = Math.floor(whole / 86_400);
  const h = Math.floor((whole % 86_400) / 3600);
  return h === 0 ? `${d} d` : `${d} d ${h} h`;
}

/** Seconds between two ISO times (or `end` = now), null when `start` is missing. */
export function elapsed(start: string | null | undefined, end: string | null | undefined, now = Date.now()): number | null {
  if (!start) return null;
  const a = Date.parse(start);
  const b = end ? Date.parse(end) : now;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return null;
  return Math.max(0, (b - a) / 1000);
}

/** How long ago an ISO time was: `just now`, `42 s ago`, `5 min ago`, `3 h ago`, `2 d ago`. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return NONE;
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return NONE;
  const s = Math.round((now - t) / 1000);
  if (s < 0) return "in the future";
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** An ISO time in local time: `2026-11-24 17:44:33`. */
export function dateTime(iso: string | null | undefined): string {
  if (!iso) return NONE;
  const d = new Date(iso);
  if (!Number.isFinite(d.getTime())) return NONE;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A count with thousands grouped (`12345` → `12,345`); compact above a million. */
export function count(value: number | null | undefined): string {
  if (!finite(value)) return NONE;
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(value >= 1e7 ? 0 : 1)} M`;
  return Math.round(value).toLocaleString("en-US");
}

/** A plain number with at most `digits` decimals (`1.50` → `1.5`). */
export function num(value: number | null | undefined, digits = 2): string {
  if (!finite(value)) return NONE;
  return String(Number(value.toFixed(digits)));
}

/** `snake_case` words for people: `specialized_ai` → `Specialized AI`. */
export function humanize(word: string | null | undefined): string {
  if (!word) return NONE;
  const spaced = word.replace(/[_-]+/g, " ").trim();
  return spaced
    .split(" ")
    .map((w, i) => {
      if (/^(ai|llm|gpu|cpu|api|qa|id)$/i.test(w)) return w.toUpperCase();
      return i === 0 ? w.charAt(0).toUpperCase() + w.slice(1) : w;
    })
    .join(" ");
}

/**
 * The last characters of a long id, for tables (the full id goes in the title): ids are
 * UUIDv7, whose first characters are the time and alike for tasks made together.
 */
export function shortId(id: string, length = 8): string {
  return id.length > length ? id.slice(-length) : id;
}

/** Pretty JSON, or the string itself when it already is one. */
export function pretty(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}
