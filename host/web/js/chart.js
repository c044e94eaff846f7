// A webhook's last 24 hours (GET /v1/webhooks/{id}/stats) drawn with uPlot: deliveries per
// hour as stacked bars by outcome, and attempt latency p50/p99. The legends show the day's
// totals, or the hovered hour's figures. Drawn once per page; refreshes update the data.

const OUTCOMES = [
  ['succeeded', 'Delivered', '#16a34a'], ['failed', 'Failed', '#dc2626'], ['plugin_error', 'Plugin error', '#7c3aed'],
  ['filtered', 'Filtered out', '#9ca3af'], ['pending', 'Waiting', '#d97706'], ['paused', 'Paused', '#0891b2'],
];
const LATENCY = [['latencyP50Ms', 'p50', '#2563eb'], ['latencyP99Ms', 'p99', '#dc2626']];

const plots = new WeakMap(); // container → {bars, latency, legends, stats}

/** Stacked bars: each series is drawn as the sum of itself and those below it. */
function stack(stats) {
  const raw = OUTCOMES.map(([outcome]) => stats.hours.map((h) => h.outcomes[outcome] ?? 0));
  // An empty segment is left out (null), not drawn as a sliver at zero.
  const stacked = raw.map((series, i) => stats.hours.map((_, t) => (series[t] === 0 ? null : raw.slice(i).reduce((sum, s) => sum + s[t], 0))));
  return { raw, stacked };
}

function legend(id, entries) {
  const element = document.createElement('ul');
  element.className = 'legend';
  element.id = id;
  const values = entries.map(([label, color]) => {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = color;
    const value = document.createElement('strong');
    item.append(swatch, `${label} `, value);
    element.append(item);
    return value;
  });
  return { element, values };
}

function fillLegends(state, hour) {
  const { stats, legends } = state;
  const { raw } = stack(stats);
  OUTCOMES.forEach((_, i) => {
    legends.bars.values[i].textContent = String(hour === null ? raw[i].reduce((a, b) => a + b, 0) : raw[i][hour]);
  });
  const hours = stats.hours.filter((h) => h.latencyP50Ms !== null && h.latencyP50Ms !== undefined);
  LATENCY.forEach(([key], i) => {
    const value = hour === null ? Math.max(0, ...hours.map((h) => h[key] ?? 0)) : stats.hours[hour][key];
    legends.latency.values[i].textContent = value === null || value === undefined ? '—' : `${Math.round(value)} ms`;
  });
  legends.caption.textContent = hour === null
    ? 'Totals of the last 24 hours (latency: its worst hour); point at an hour for its figures.'
    : `The hour from ${new Date(stats.hours[hour].hour).toLocaleString()}`;
}

export function renderStats(container, stats) {
  const hours = stats.hours.map((h) => Date.parse(h.hour) / 1000);
  const { stacked } = stack(stats);
  const latency = LATENCY.map(([key]) => stats.hours.map((h) => h[key] ?? null));
  const existing = plots.get(container);
  if (existing) {
    existing.stats = stats;
    existing.bars.setData([hours, ...stacked]);
    existing.latency.setData([hours, ...latency]);
    fillLegends(existing, null);
    return;
  }
  container.replaceChildren();
  const caption = document.createElement('p');
  caption.className = 'muted small';
  const legends = { bars: legend('legend-deliveries', OUTCOMES.map(([, label, color]) => [label, color])),
    latency: legend('legend-latency', LATENCY.map(([, label, color]) => [label, color])), caption };
  container.append(caption, legends.bars.element);
  if (typeof uPlot === 'undefined') { // the chart library failed to load: the totals stay
    fillLegends({ stats, legends }, null);
    return;
  }
  const width = Math.max(260, container.clientWidth);
  const state = { stats, legends };
  const hover = { hooks: { setCursor: [(u) => fillLegends(state, u.cursor.idx ?? null)] } };
  const bars = uPlot.paths.bars({ size: [0.7, 40], align: 0 });
  state.bars = new uPlot({
    width, height: 180, legend: { show: false }, cursor: { points: { show: false } }, ...hover,
    series: [{}, ...OUTCOMES.map(([, label, color]) => ({ label, stroke: color, fill: color, paths: bars, points: { show: false } }))],
    axes: [{}, { size: 50, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000] }],
    scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } },
  }, [hours, ...stacked], container);
  container.append(legends.latency.element);
  state.latency = new uPlot({
    width, height: 140, legend: { show: false }, ...hover,
    series: [{}, ...LATENCY.map(([, label, color]) => ({ label, stroke: color, width: 2, spanGaps: true, points: { show: true, size: 6, fill: color } }))],
    axes: [{}, { size: 60, values: (u, ticks) => ticks.map((t) => `${t} ms`) }],
    scales: { y: { range: (u, min, max) => [0, Math.max(1, max ?? 1)] } },
  }, [hours, ...latency], container);
  plots.set(container, state);
  fillLegends(state, null);
}
