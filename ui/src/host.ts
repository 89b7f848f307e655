// Host samples (`GET /monitoring/host`) and stored series (`GET /monitoring/series`) as
// the columns a chart draws: one time axis (unix seconds) and one value array per line.

import type { HostSnapshot, SeriesAnswer } from "./types";

export interface Line {
  label: string;
  values: (number | null)[];
}

export interface Columns {
  times: number[];
  lines: Line[];
}

export interface HostColumns {
  cpu: Columns;
  memory: Columns;
  disk: Columns;
  network: Columns;
  /** One chart per GPU (utilisation and VRAM); empty without GPUs. */
  gpus: { name: string; columns: Columns }[];
}

/** Network traffic over every interface but loopback. */
export function traffic(snapshot: HostSnapshot): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  for (const n of snapshot.networks) {
    if (n.interface === "lo" || n.interface.startsWith("lo0")) continue;
    rx += n.rx_bytes_per_second;
    tx += n.tx_bytes_per_second;
  }
  return { rx, tx };
}

/**
 * Disk mounts worth a line: one per filesystem, told apart by size and free space (bind
 * mounts of one disk report the same figures), the shortest mount point first.
 */
export function distinctDisks(snapshot: HostSnapshot): string[] {
  const seen = new Map<string, string>();
  const sorted = [...snapshot.disks].sort((a, b) => a.mount.length - b.mount.length || a.mount.localeCompare(b.mount));
  for (const d of sorted) {
    const key = `${d.total_bytes}:${d.available_bytes}`;
    if (!seen.has(key)) seen.set(key, d.mount);
  }
  return [...seen.values()];
}

/**
 * The snapshots kept for the graphs after a poll: `kept` plus whatever in `incoming` is newer
 * than its last one, cut to the `horizonSeconds` before the newest. Returns `kept` itself
 * when nothing is new. The Overview sends `since=<last at>` so an API that honours it
 * answers only the new samples; one that answers the whole ring gives the same result.
 */
export function mergeHistory(kept: HostSnapshot[], incoming: HostSnapshot[], horizonSeconds = 3600): HostSnapshot[] {
  const last = kept[kept.length - 1];
  const lastAt = last ? Date.parse(last.at) : Number.NEGATIVE_INFINITY;
  const fresh = incoming.filter((s) => Date.parse(s.at) > lastAt);
  if (fresh.length === 0) return kept;
  const all = kept.concat(fresh);
  const newest = Date.parse(all[all.length - 1]?.at ?? "");
  const from = all.findIndex((s) => Date.parse(s.at) >= newest - horizonSeconds * 1000);
  return from > 0 ? all.slice(from) : all;
}

/** Host snapshots (oldest first) as chart columns. */
/**
 * At most `maxPoints` points: consecutive points averaged in equal runs (nulls skipped; a
 * run of nulls stays a gap), each run at its newest time, so the last point is still "now".
 * A chart draws every point it is given on each redraw; an hour of 1 s samples is six times
 * more than a graph's width can show, and redrawing them is what a resident dashboard
 * spends its CPU on.
 */
export function thin(columns: Columns, maxPoints: number): Columns {
  const n = columns.times.length;
  if (maxPoints < 1 || n <= maxPoints) return columns;
  const run = Math.ceil(n / maxPoints);
  const times: number[] = [];
  const lines = columns.lines.map((l) => ({ label: l.label, values: [] as (number | null)[] }));
  // Runs end at the newest point: the first run may be shorter.
  for (let end = n - 1 - Math.floor((n - 1) / run) * run; end < n; end += run) {
    const start = Math.max(0, end - run + 1);
    times.push(columns.times[end] as number);
    columns.lines.forEach((line, i) => {
      let sum = 0;
      let count = 0;
      for (let k = start; k <= end; k++) {
        const v = line.values[k];
        if (v !== null && v !== undefined && Number.isFinite(v)) {
          sum += v;
          count++;
        }
      }
      lines[i]?.values.push(count > 0 ? sum / count : null);
    });
  }
  return { times, lines };
}

export function hostColumns(history: HostSnapshot[], maxPoints = Number.POSITIVE_INFINITY): HostColumns {
  const times: number[] = [];
  const cpu: (number | null)[] = [];
  const load: (number | null)[] = [];
  const memory: (number | null)[] = [];
  const swap: (number | null)[] = [];
  const rx: (number | null)[] = [];
  const tx: (number | null)[] = [];
  const last = history[history.length - 1];
  const mounts = last ? distinctDisks(last) : [];
  const disks = mounts.map(() => [] as (number | null)[]);
  const gpuIndexes = last ? last.gpus.map((g) => g.index) : [];
  const gpuUtil = gpuIndexes.map(() => [] as (number | null)[]);
  const gpuMem = gpuIndexes.map(() => [] as (number | null)[]);
  const cores = last ? Math.max(1, last.per_core_percent.length) : 1;
  for (const s of history) {
    const t = Date.parse(s.at) / 1000;
    if (!Number.isFinite(t)) continue;
    times.push(t);
    cpu.push(s.cpu_percent);
    // The 1-minute load as percent of all cores, so it shares the CPU chart's axis.
    load.push((s.load_average[0] / cores) * 100);
    memory.push(s.memory_percent);
    swap.push(s.swap_total_bytes > 0 ? (s.swap_used_bytes / s.swap_total_bytes) * 100 : null);
    const net = traffic(s);
    rx.push(net.rx);
    tx.push(net.tx);
    mounts.forEach((mount, i) => {
      disks[i]?.push(s.disks.find((d) => d.mount === mount)?.used_percent ?? null);
    });
    gpuIndexes.forEach((index, i) => {
      const g = s.gpus.find((x) => x.index === index);
      gpuUtil[i]?.push(g ? g.utilization_percent : null);
      gpuMem[i]?.push(g ? g.memory_percent : null);
    });
  }
  const hasSwap = swap.some((v) => v !== null);
  const few = (c: Columns): Columns => thin(c, maxPoints);
  return {
    cpu: few({
      times,
      lines: [
        { label: "CPU", values: cpu },
        { label: "Load (1 min, % of cores)", values: load },
      ],
    }),
    memory: few({
      times,
      lines: hasSwap
        ? [
            { label: "Memory", values: memory },
            { label: "Swap", values: swap },
          ]
        : [{ label: "Memory", values: memory }],
    }),
    disk: few({ times, lines: mounts.map((mount, i) => ({ label: mount, values: disks[i] ?? [] })) }),
    network: few({
      times,
      lines: [
        { label: "Received", values: rx },
        { label: "Sent", values: tx },
      ],
    }),
    gpus: gpuIndexes.map((index, i) => ({
      name: last?.gpus.find((g) => g.index === index)?.name ?? `gpu${index}`,
      columns: few({
        times,
        lines: [
          { label: `gpu${index} busy`, values: gpuUtil[i] ?? [] },
          { label: `gpu${index} VRAM`, values: gpuMem[i] ?? [] },
        ],
      }),
    })),
  };
}

/**
 * A series answer as columns: the union of every subject's times, each subject a line
 * (null where it has no point), at most `maxLines` subjects (those with the highest peak).
 */
export function seriesColumns(answer: SeriesAnswer, maxLines = 8): Columns & { omitted: number } {
  const subjects = [...answer.series]
    .map((s) => ({ s, peak: s.points.reduce((m, p) => Math.max(m, p.max), Number.NEGATIVE_INFINITY) }))
    .sort((a, b) => b.peak - a.peak || a.s.subject.localeCompare(b.s.subject));
  const kept = subjects.slice(0, maxLines).map((x) => x.s);
  const timeSet = new Set<number>();
  for (const s of kept) for (const p of s.points) timeSet.add(p.t);
  const times = [...timeSet].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const lines = kept.map((s) => {
    const values: (number | null)[] = times.map(() => null);
    for (const p of s.points) {
      const i = index.get(p.t);
      if (i !== undefined) values[i] = p.avg;
    }
    return { label: s.subject, values };
  });
  return { times, lines, omitted: Math.max(0, subjects.length - kept.length) };
}
