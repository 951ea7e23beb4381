// Usage per day as an SVG bar chart, drawn with DOM calls (no markup strings), with the numbers in a table
// beside it for screen readers and for anyone who wants the figures.

import { h, svg } from "./dom.js";
import { credits } from "./format.js";

const WIDTH = 720;
const HEIGHT = 200;
const PAD = { top: 12, right: 8, bottom: 28, left: 44 };

export function usageChart(usage) {
  const days = usage.data;
  const peak = Math.max(1, ...days.map((day) => day.credits_spent));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const step = plotW / days.length;
  const total = credits(usage.credits_spent);
  const chart = svg(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      class: "chart",
      role: "img",
      "aria-label": `Credits spent per day over the last ${usage.days} days: ${total} in all`,
    },
    svg("line", { x1: PAD.left, y1: PAD.top + plotH, x2: WIDTH - PAD.right, y2: PAD.top + plotH, class: "axis" }),
    svg("text", { x: PAD.left - 6, y: PAD.top + 4, class: "tick", "text-anchor": "end" }, credits(peak)),
    svg("text", { x: PAD.left - 6, y: PAD.top + plotH, class: "tick", "text-anchor": "end" }, "0"),
  );
  days.forEach((day, index) => {
    const barH = (day.credits_spent / peak) * plotH;
    const x = PAD.left + index * step + step * 0.15;
    const bar = svg("rect", {
      x,
      y: PAD.top + plotH - barH,
      width: step * 0.7,
      height: Math.max(barH, day.tasks > 0 ? 1 : 0),
      class: day.failed > 0 && day.completed === 0 ? "bar failed" : "bar",
    });
    bar.append(svg("title", {}, `${day.date}: ${credits(day.credits_spent)} credits, ${day.tasks} tasks`));
    chart.append(bar);
    // A date every week, counted back from today so the last bar is always labelled.
    if ((days.length - 1 - index) % 7 === 0) {
      chart.append(
        svg("text", { x: x + step * 0.35, y: HEIGHT - 8, class: "tick", "text-anchor": "middle" }, day.date.slice(5)),
      );
    }
  });
  const rows = days
    .filter((day) => day.tasks || day.completed || day.failed)
    .map((day) =>
      h(
        "tr",
        {},
        h("td", {}, day.date),
        h("td", {}, day.tasks),
        h("td", {}, day.completed),
        h("td", {}, day.failed),
        h("td", {}, credits(day.credits_spent)),
      ),
    );
  const table = h(
    "details",
    {},
    h("summary", {}, "Usage per day as a table"),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        {},
        h(
          "thead",
          {},
          h("tr", {}, ...["Day (UTC)", "Tasks", "Completed", "Failed", "Credits spent"].map((t) => h("th", { scope: "col" }, t))),
        ),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5 }, "No use in this window."))),
      ),
    ),
  );
  return h("figure", { class: "usage" }, chart, h("figcaption", {}, `Credits spent per day (UTC), ${total} in ${usage.days} days`), table);
}
