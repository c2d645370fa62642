// chart.js is loaded as its UMD build by a classic <script> (no bundler): it defines `Chart`.
import type { Chart as ChartClass } from 'chart.js';

declare global {
  const Chart: typeof ChartClass;
}
