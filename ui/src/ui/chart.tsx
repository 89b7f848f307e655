// A time-series chart on uPlot. New data is drawn at most once a second however often it
// arrives, and not at all while the chart is scrolled out of view (the desktop app's idle
// CPU budget); the plot follows its container's width and is rebuilt only when its lines
// or the colour scheme change.

import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Columns } from "../host";

/** Line colours, in order; distinguishable in both schemes. */
export const PALETTE = ["#4c8dff", "#f59e0b", "#14b8a6", "#ef4444", "#a855f7", "#84cc16", "#ec4899", "#06b6d4"];

/** uPlot's own axis font, set explicitly so labels can be measured. */
const AXIS_FONT = "12px system-ui, sans-serif";

/** Least time between two redraws with new data. */
export const REDRAW_MS = 1000;

function prefersDark(): boolean {
  return (
    typeof window !== "undefined" &&
    typeof window.matchMedia === "function" &&
    window.matchMedia("(prefers-color-scheme: dark)").matches
  );
}

/** The colour scheme, following the system's while mounted. */
export function useDarkScheme(): boolean {
  const [dark, setDark] = useState(prefersDark);
  useEffect(() => {
    if (typeof window.matchMedia !== "function") return;
    const query = window.matchMedia("(prefers-color-scheme: dark)");
    const onChange = (): void => setDark(query.matches);
    query.addEventListener("change", onChange);
    return () => query.removeEventListener("change", onChange);
  }, []);
  return dark;
}

function cssVar(name: string, fallback: string): string {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

function aligned(columns: Columns): uPlot.AlignedData {
  return [columns.times, ...columns.lines.map((l) => l.values)] as uPlot.AlignedData;
}

export interface ChartProps {
  columns: Columns;
  /** How values read on the axis and in the legend. */
  format: (value: number) => string;
  height?: number;
  /** Least top of the y axis (percent charts: 100, so a load above all cores still shows); otherwise the data's top. */
  yMax?: number;
  testid?: string;
}

export function Chart(props: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const pending = useRef<Columns | null>(null);
  const lastDraw = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const onScreen = useRef(true);
  const formatRef = useRef(props.format);
  formatRef.current = props.format;
  const dark = useDarkScheme();
  const height = props.height ?? 170;
  const signature = props.columns.lines.map((l) => l.label).join("\u0000");

  // (Re)build the plot when its lines, the scheme or the size class change.
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const axisColor = cssVar("--muted", dark ? "#9aa4b2" : "#5b6472");
    const gridColor = cssVar("--grid", dark ? "#2a313c" : "#e6e9ee");
    const fmt = (v: number | null | undefined): string =>
      v === null || v === undefined || !Number.isFinite(v) ? "—" : formatRef.current(v);
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      legend: { show: true, live: true },
      scales: {
        x: { time: true },
        y: {
          range: (_u, _min, max) => {
            const top = Number.isFinite(max) && max > 0 ? max * 1.05 : 0;
            if (props.yMax !== undefined) return [0, Math.max(props.yMax, top)];
            return [0, top > 0 ? top : 1];
          },
        },
      },
      axes: [
        { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor, width: 1 } },
        {
          stroke: axisColor,
          grid: { stroke: gridColor, width: 1 },
          ticks: { stroke: gridColor, width: 1 },
          // Wide enough for the longest label ("1023.5 KiB/s"), measured in the axis font.
          size: (u, values) => {
            if (!values || values.length === 0) return 48;
            u.ctx.font = AXIS_FONT;
            const widest = Math.max(...values.map((v) => u.ctx.measureText(v).width));
            return Math.ceil(widest) + 22;
          },
          font: AXIS_FONT,
          values: (_u, splits) => splits.map((v) => fmt(v)),
        },
      ],
      series: [
        { value: (_u, v) => (v === null ? "—" : new Date(v * 1000).toLocaleTimeString()) },
        ...props.columns.lines.map((line, i) => ({
          label: line.label,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          fill: props.columns.lines.length === 1 ? `${PALETTE[i % PALETTE.length]}22` : undefined,
          spanGaps: false,
          points: { show: false },
          value: (_u: uPlot, v: number | null) => fmt(v),
        })),
      ],
    };
    const chart = new uPlot(opts, aligned(props.columns), el);
    plot.current = chart;
    lastDraw.current = Date.now();
    const observer = new ResizeObserver(() => {
      const width = Math.max(200, el.clientWidth);
      if (width !== chart.width) chart.setSize({ width, height });
    });
    observer.observe(el);
    // Off screen (scrolled away) a chart keeps its newest data and draws it when it shows.
    const visibility = new IntersectionObserver((entries) => {
      const shown = entries.some((e) => e.isIntersecting);
      onScreen.current = shown;
      const next = pending.current;
      if (shown && next && plot.current === chart && timer.current === undefined) {
        pending.current = null;
        lastDraw.current = Date.now();
        chart.setData(aligned(next));
      }
    });
    visibility.observe(el);
    return () => {
      observer.disconnect();
      visibility.disconnect();
      clearTimeout(timer.current);
      timer.current = undefined;
      chart.destroy();
      plot.current = null;
    };
    // The data itself is applied by the effect below.
  }, [signature, dark, height, props.yMax]);

  // New data: drawn now if the last draw is a second old, else when it is.
  useEffect(() => {
    pending.current = props.columns;
    const draw = (): void => {
      timer.current = undefined;
      const chart = plot.current;
      const next = pending.current;
      if (!chart || !next || !onScreen.current) return;
      pending.current = null;
      lastDraw.current = Date.now();
      chart.setData(aligned(next));
    };
    if (timer.current !== undefined) return;
    const wait = REDRAW_MS - (Date.now() - lastDraw.current);
    if (wait <= 0) draw();
    else timer.current = setTimeout(draw, wait);
  }, [props.columns]);

  // One point draws no line, only an axis around a single instant: say so instead.
  const samples = props.columns.times.length;
  return (
    <div class="chart" data-testid={props.testid}>
      <div ref={host} class="chart-plot" />
      {samples === 0 && <div class="chart-empty">No samples in this range yet</div>}
      {samples === 1 && <div class="chart-empty">Collecting samples…</div>}
    </div>
  );
}
