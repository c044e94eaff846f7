// A webhook's last 24 hours (GET /v1/webhooks/{id}/stats) drawn with uPlot: deliveries per
// hour by outcome, and attempt latency p50/p99.

const OUTCOMES = [
  ['succeeded', '#15803d'], ['failed', '#b91c1c'], ['plugin_error', '#7c3aed'],
  ['filtered', '#6b7280'], ['pending', '#b45309'], ['paused', '#0891b2'],
];

export function renderStats(container, stats) {
  container.replaceChildren();
  const hours = stats.hours.map((h) => Date.parse(h.hour) / 1000);
  const width = Math.max(280, container.clientWidth - 8);
  const total = stats.hours.reduce((sum, h) => sum + Object.values(h.outcomes).reduce((a, b) => a + b, 0), 0);
  const summary = document.createElement('p');
  summary.className = 'muted';
  summary.textContent = `${total} deliveries in the last 24 hours`;
  container.append(summary);
  if (typeof uPlot === 'undefined') return; // the chart library failed to load: the numbers above stay
  const counts = OUTCOMES.map(([outcome]) => stats.hours.map((h) => h.outcomes[outcome] ?? 0));
  new uPlot({
    title: 'Deliveries per hour', width, height: 180,
    series: [{}, ...OUTCOMES.map(([label, stroke]) => ({ label, stroke, width: 2, points: { show: true } }))],
    axes: [{}, { label: 'deliveries' }],
  }, [hours, ...counts], container);
  new uPlot({
    title: 'Attempt latency (ms)', width, height: 180,
    series: [{}, { label: 'p50', stroke: '#2563eb', width: 2, spanGaps: true }, { label: 'p99', stroke: '#dc2626', width: 2, spanGaps: true }],
    axes: [{}, { label: 'ms' }],
  }, [hours, stats.hours.map((h) => h.latencyP50Ms), stats.hours.map((h) => h.latencyP99Ms)], container);
}
