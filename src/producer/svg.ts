/**
 * Dependency-free SVG charts: pure string building (no fs, no DOM), so the demo and the training
 * reports can write plots anywhere Node runs, and tests can inspect the markup directly.
 */

import { FONT, MARGIN, PALETTE, escapeXml, frame, niceDomain, px, svgDocument } from './svg-frame.js';
import { ValidationError } from '../core/errors.js';

export type Point = [number, number];

export interface Series {
  name: string;
  color?: string;
  points: Point[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  /** Fixed y domain; by default the data range widened to nice tick values. */
  yRange?: [number, number];
  /** Fixed x domain; by default the data range widened to nice tick values. */
  xRange?: [number, number];
  /** Draw a dot on every point (useful for a handful of per-epoch values). */
  markers?: boolean;
}

export interface VectorFieldOptions {
  title: string;
  xRange: [number, number];
  yRange: [number, number];
  /** Spacing of arrow tails in data units; tails at lo, lo+grid, … below hi (numpy's arange). */
  grid: number;
  vector: (x: number, y: number) => [number, number];
  xLabel?: string;
  yLabel?: string;
  color?: string;
  width?: number;
  height?: number;
}

/** A line chart of one or more series, with a legend; non-finite points break a line. */
export function lineChart(opts: LineChartOptions): string {
  const width = opts.width ?? 640;
  const height = opts.height ?? 400;
  const all = opts.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const x = opts.xRange ?? niceDomain(all.map((p) => p[0]));
  const y = opts.yRange ?? niceDomain(all.map((p) => p[1]));
  const f = frame({ title: opts.title, xLabel: opts.xLabel, yLabel: opts.yLabel, width, height, x, y });
  const parts = [f.head, `<g clip-path="url(#${f.clipId})">`];
  opts.series.forEach((s, i) => {
    const color = escapeXml(s.color ?? PALETTE[i % PALETTE.length]);
    let d = '';
    let pen = false;
    for (const [px_, py] of s.points) {
      if (!Number.isFinite(px_) || !Number.isFinite(py)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${px(f.sx(px_))} ${px(f.sy(py))}`;
      pen = true;
    }
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"/>`);
    if (opts.markers) {
      for (const [a, b] of s.points) {
        if (Number.isFinite(a) && Number.isFinite(b)) parts.push(`<circle cx="${px(f.sx(a))}" cy="${px(f.sy(b))}" r="3" fill="${color}"/>`);
      }
    }
  });
  parts.push('</g>');
  // Legend in the top-right corner of the plot area, on a white box so grid lines don't cross it.
  const lw = 24 + 7 * Math.max(0, ...opts.series.map((s) => s.name.length));
  const lx = width - MARGIN.right - lw - 8;
  const ly = MARGIN.top + 8;
  parts.push(`<rect x="${lx}" y="${ly}" width="${lw}" height="${opts.series.length * 18 + 6}" fill="white" fill-opacity="0.85" stroke="#999"/>`);
  opts.series.forEach((s, i) => {
    const color = escapeXml(s.color ?? PALETTE[i % PALETTE.length]);
    const yy = ly + 14 + i * 18;
    parts.push(`<line x1="${lx + 4}" y1="${yy - 4}" x2="${lx + 18}" y2="${yy - 4}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${lx + 22}" y="${yy}" font-size="11" ${FONT}>${escapeXml(s.name)}</text>`);
  });
  return svgDocument(width, height, parts.join('\n'));
}

/**
 * Arrows (line + filled head) at grid points, like matplotlib's quiver. Lengths are relative: the
 * longest arrow is scaled to 90% of a grid cell so arrows never overlap their neighbours.
 */
export function vectorField(opts: VectorFieldOptions): string {
  const width = opts.width ?? 520;
  const height = opts.height ?? 520;
  const f = frame({
    title: opts.title, xLabel: opts.xLabel ?? 'x0', yLabel: opts.yLabel ?? 'x1', width, height,
    x: opts.xRange, y: opts.yRange,
  });
  const tails: { X: number; Y: number; dX: number; dY: number }[] = [];
  const [ax, bx] = opts.xRange;
  const [ay, by] = opts.yRange;
  // Index-multiplied positions (not accumulated) for the same reason as niceTicks.
  for (let i = 0; ax + i * opts.grid < bx; i++) {
    for (let j = 0; ay + j * opts.grid < by; j++) {
      const x = ax + i * opts.grid;
      const y = ay + j * opts.grid;
      const [dx, dy] = opts.vector(x, y);
      // Pixel-space direction: y grows downward on screen.
      tails.push({ X: f.sx(x), Y: f.sy(y), dX: f.sx(x + dx) - f.sx(x), dY: f.sy(y + dy) - f.sy(y) });
    }
  }
  const cell = Math.min(Math.abs(f.sx(ax + opts.grid) - f.sx(ax)), Math.abs(f.sy(ay + opts.grid) - f.sy(ay)));
  const longest = Math.max(0, ...tails.map((t) => Math.hypot(t.dX, t.dY)));
  const k = longest > 0 ? (0.9 * cell) / longest : 0;
  let shafts = '';
  let heads = '';
  for (const t of tails) {
    const dX = t.dX * k, dY = t.dY * k;
    const len = Math.hypot(dX, dY);
    if (!(len > 0.5)) continue; // a zero (or sub-pixel) vector has no direction to draw
    const hx = t.X + dX, hy = t.Y + dY;
    const ux = dX / len, uy = dY / len;
    const head = Math.min(6, 0.4 * len);
    const bx_ = hx - ux * head, by_ = hy - uy * head;
    shafts += `M${px(t.X)} ${px(t.Y)}L${px(bx_)} ${px(by_)}`;
    heads += `M${px(hx)} ${px(hy)}L${px(bx_ - uy * head * 0.5)} ${px(by_ + ux * head * 0.5)}L${px(bx_ + uy * head * 0.5)} ${px(by_ - ux * head * 0.5)}Z`;
  }
  const color = escapeXml(opts.color ?? '#666666');
  const body = [
    f.head,
    `<g clip-path="url(#${f.clipId})">`,
    `<path d="${shafts}" fill="none" stroke="${color}" stroke-width="1.2"/>`,
    `<path d="${heads}" fill="${color}" stroke="none"/>`,
    '</g>',
  ].join('\n');
  return svgDocument(width, height, body);
}

/**
 * Several chart documents stacked vertically in one SVG (e.g. loss per iteration above accuracy
 * per epoch). Each part keeps its own coordinates as a nested <svg> moved down by `y`.
 */
export function stackCharts(parts: string[], gap = 0): string {
  let y = 0;
  let width = 0;
  const nested: string[] = [];
  for (const part of parts) {
    const m = /<svg\b[^>]*\bwidth="([\d.]+)"[^>]*\bheight="([\d.]+)"/.exec(part);
    if (!m) throw new ValidationError('stackCharts', 'each part', 'an <svg> with width and height', part);
    nested.push(part.trim().replace(/^<svg\b/, `<svg x="0" y="${y}"`));
    width = Math.max(width, Number(m[1]));
    y += Number(m[2]) + gap;
  }
  const height = Math.max(0, y - gap);
  return svgDocument(width, height, `<rect width="${width}" height="${height}" fill="white"/>\n${nested.join('\n')}`);
}
