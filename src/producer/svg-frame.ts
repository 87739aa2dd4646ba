/** The parts every SVG chart of svg.ts shares: colors, scales, ticks, axes and the document. */

/** Colors for series without one (matplotlib's default cycle, so plots look like the book's). */
export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];
export const MARGIN = { left: 70, right: 20, top: 40, bottom: 50 };
export const FONT = 'font-family="sans-serif"';

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/** Pixel coordinates rounded to 0.01 px: sub-pixel precision without 17-digit attribute noise. */
export function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** 1, 2 or 5 × 10^k: the "nice" step nearest to range / count (Heckbert's labeling). */
export function niceStep(range: number, count = 5): number {
  const raw = range / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/** Tick values on multiples of a nice step inside [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  const step = niceStep(hi - lo, count);
  const ticks: number[] = [];
  // Multiply instead of accumulating so 0.1-steps print as 0.3, not 0.30000000000000004.
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) ticks.push(k * step);
  return ticks;
}

/** A tick label with just the decimals its step needs. */
export function tickLabel(v: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const s = v.toFixed(decimals);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
}

/** The data range widened to nice tick bounds; a flat range gets some height so scales stay finite. */
export function niceDomain(values: number[]): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo);
  return [Math.floor(lo / step + 1e-9) * step, Math.ceil(hi / step - 1e-9) * step];
}

export interface Frame {
  width: number;
  height: number;
  sx: (x: number) => number;
  sy: (y: number) => number;
  /** Opening markup: background, title, grid, axes, ticks, labels. */
  head: string;
  clipId: string;
}

let nextClip = 0;

/** The parts every chart shares: scales from data to pixels, plus axes and labels. */
export function frame(o: { title: string; xLabel: string; yLabel: string; width: number; height: number; x: [number, number]; y: [number, number] }): Frame {
  const { width, height } = o;
  const [x0, x1] = o.x;
  const [y0, y1] = o.y;
  const left = MARGIN.left, right = width - MARGIN.right, top = MARGIN.top, bottom = height - MARGIN.bottom;
  const sx = (x: number): number => left + ((x - x0) / (x1 - x0)) * (right - left);
  const sy = (y: number): number => bottom - ((y - y0) / (y1 - y0)) * (bottom - top);
  // Ids only need to be unique within one document; a counter keeps stacked charts apart.
  const clipId = `plot${nextClip++}`;
  const parts: string[] = [
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<clipPath id="${clipId}"><rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}"/></clipPath>`,
    `<text x="${px(width / 2)}" y="24" text-anchor="middle" font-size="16" ${FONT}>${escapeXml(o.title)}</text>`,
  ];
  const xs = niceStep(x1 - x0);
  for (const t of niceTicks(x0, x1)) {
    const X = px(sx(t));
    parts.push(`<line x1="${X}" y1="${top}" x2="${X}" y2="${bottom}" stroke="#e5e5e5"/>`);
    parts.push(`<line x1="${X}" y1="${bottom}" x2="${X}" y2="${bottom + 5}" stroke="black"/>`);
    parts.push(`<text x="${X}" y="${bottom + 18}" text-anchor="middle" font-size="11" ${FONT}>${tickLabel(t, xs)}</text>`);
  }
  const ys = niceStep(y1 - y0);
  for (const t of niceTicks(y0, y1)) {
    const Y = px(sy(t));
    parts.push(`<line x1="${left}" y1="${Y}" x2="${right}" y2="${Y}" stroke="#e5e5e5"/>`);
    parts.push(`<line x1="${left - 5}" y1="${Y}" x2="${left}" y2="${Y}" stroke="black"/>`);
    parts.push(`<text x="${left - 8}" y="${Y}" dy="0.35em" text-anchor="end" font-size="11" ${FONT}>${tickLabel(t, ys)}</text>`);
  }
  parts.push(`<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="black"/>`);
  parts.push(`<text x="${px((left + right) / 2)}" y="${height - 12}" text-anchor="middle" font-size="13" ${FONT}>${escapeXml(o.xLabel)}</text>`);
  const cy = px((top + bottom) / 2);
  parts.push(`<text x="18" y="${cy}" transform="rotate(-90 18 ${cy})" text-anchor="middle" font-size="13" ${FONT}>${escapeXml(o.yLabel)}</text>`);
  return { width, height, sx, sy, clipId, head: parts.join('\n') };
}

export function svgDocument(width: number, height: number, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">\n${body}\n</svg>\n`;
}
