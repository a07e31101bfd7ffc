// Draws the book's altair charts from the specs written next to them, with the vega-embed bundled
// into this site (_static/vega/), so they work offline. Each chart is
//   <div class="vega-chart" id="..."></div>
//   <script type="application/json" class="vega-chart-spec" data-chart="...">{vega-lite spec}</script>
// window.annotatedBertCharts settles when every chart on the page has drawn (or failed, logged as an error).
(function () {
  "use strict";
  let resolveAll;
  window.annotatedBertCharts = new Promise(function (resolve) { resolveAll = resolve; });

  function drawAll() {
    const specs = document.querySelectorAll("script.vega-chart-spec");
    const drawn = Array.from(specs).map(function (element) {
      const target = document.getElementById(element.dataset.chart);
      if (typeof window.vegaEmbed !== "function") {
        return Promise.reject(new Error("vegaEmbed is not loaded"));
      }
      const spec = JSON.parse(element.textContent);
      // The offline site has no editor to open: keep saving as SVG/PNG and viewing the source.
      return window.vegaEmbed(target, spec, {
        actions: { export: true, source: true, compiled: false, editor: false },
      });
    });
    Promise.allSettled(drawn).then(function (results) {
      results.forEach(function (result, index) {
        if (result.status === "rejected") {
          console.error("altair chart " + (index + 1) + " did not draw:", result.reason);
        }
      });
      resolveAll(results.map(function (result) { return result.status; }));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
