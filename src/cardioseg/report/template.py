"""The report's HTML template (jinja2, autoescaped): one file with inline CSS and a small sorting script.

Nothing is fetched: images and videos arrive as data URIs; plotly.js, when a 3D view needs it,
is inlined gzip-compressed and inflated by the page (``DecompressionStream``) before the figure,
carried as JSON, is drawn.
"""

TEMPLATE = r"""{%- macro table(data, sortable=False) -%}
<table{% if sortable %} class="sortable"{% endif %}>
<thead><tr>{% for column in data.columns %}<th{% if column.text %} class="text"{% endif %}>{{ column.label }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in data.rows %}<tr>{% for cell in row %}<td{% if cell.cls %} class="{{ cell.cls }}"{% endif %}{% if cell.value is not none %} data-value="{{ cell.value }}"{% endif %}>{{ cell.text }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>
{%- endmacro -%}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
  :root { --ink: #1d2733; --muted: #5c6b7a; --line: #d9e0e6; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
         margin: 0; background: #f6f8fa; }
  header { background: #14324f; color: #fff; padding: 18px 28px; }
  header h1 { margin: 0 0 4px; font-size: 22px; }
  header p { margin: 0; color: #c7d5e2; }
  nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid var(--line); padding: 8px 28px; z-index: 5; }
  nav a { margin-right: 16px; color: #14324f; text-decoration: none; font-weight: 600; }
  main { max-width: 1280px; margin: 0 auto; padding: 8px 28px 40px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 6px 20px 16px; margin: 18px 0; }
  h2 { font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
  h3 { font-size: 15px; margin-bottom: 6px; }
  .facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: 8px 18px; }
  .fact { overflow-wrap: anywhere; }  /* long absolute paths wrap instead of running into the next column */
  .fact b { display: block; font-size: 12px; color: var(--muted); font-weight: 600; }
  .key { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
  .key div { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 150px; }
  .key span { display: block; font-size: 12px; color: var(--muted); }
  .key strong { font-size: 20px; }
  .notes { background: #fff7e0; border: 1px solid #f0d68a; border-radius: 6px; padding: 8px 16px; }
  .notes li { margin: 3px 0; }
  table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
  th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; white-space: nowrap; }
  th { white-space: normal; vertical-align: bottom; }
  th:first-child, td:first-child, td.text, th.text { text-align: left; }
  thead th { background: #eef2f6; }
  .scroll thead th { position: sticky; top: 0; }
  table.sortable th { cursor: pointer; user-select: none; }
  table.sortable th[aria-sort="ascending"]::after { content: " \25B2"; font-size: 10px; }
  table.sortable th[aria-sort="descending"]::after { content: " \25BC"; font-size: 10px; }
  td.note { white-space: normal; text-align: left; color: var(--muted); font-size: 12px; min-width: 300px; max-width: 560px; }
  td.qc-check { color: #b00020; font-weight: 600; }
  td.qc-ok { color: #2e7d32; }
  .scroll { max-height: 520px; overflow: auto; border: 1px solid var(--line); }
  figure { margin: 10px 0; }
  figure img, figure video { max-width: 100%; border: 1px solid var(--line); }
  figcaption { color: var(--muted); font-size: 12px; }
  .gallery { display: flex; flex-wrap: wrap; gap: 14px; }
  .gallery figure { margin: 0; max-width: 420px; }
  .legend .swatch { display: inline-block; width: 22px; height: 0; border-top: 3px solid; vertical-align: middle; margin: 0 4px 0 10px; }
  pre { background: #f3f5f7; padding: 10px; overflow: auto; font-size: 12px; }
  .muted { color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1>{{ title }}</h1>
  <p>{{ subtitle }}</p>
</header>
<nav>
  {% for anchor, label in nav %}<a href="#{{ anchor }}">{{ label }}</a>{% endfor %}
</nav>
<main>
<section id="overview">
  <h2>Overview</h2>
  {% if key_figures %}<div class="key">{% for label, value in key_figures %}<div><span>{{ label }}</span><strong>{{ value }}</strong></div>{% endfor %}</div>{% endif %}
  <div class="facts">{% for label, value in facts %}<div class="fact"><b>{{ label }}</b>{{ value }}</div>{% endfor %}</div>
  {% if notes %}<h3>Notes</h3><ul class="notes">{% for note in notes %}<li>{{ note }}</li>{% endfor %}</ul>{% endif %}
  {% if legend %}<p class="legend">Colours in every picture, video and the 3D view:{% for colour, name in legend.classes %}<span class="swatch" style="border-color: {{ colour }}"></span>{{ name }}{% endfor %}; {{ legend.styles }} (3D: translucent = reference, opaque = prediction).</p>{% endif %}
</section>

{% if metrics %}
<section id="metrics">
  <h2>Segmentation metrics (original resolution)</h2>
  <p class="muted">Mean ± SD (median) over cases, without (raw) and with the configured post-processing (post).
  Distances in {{ distance_unit }}.</p>
  {{ table(metrics) }}
  {% for fig in distribution_figures %}<figure><img src="{{ fig.src }}" alt="{{ fig.alt }}"><figcaption>{{ fig.caption }}</figcaption></figure>{% endfor %}
</section>
{% endif %}

<section id="clinical">
  <h2>Clinical indices</h2>
  {% if not clinical_blocks %}<p class="muted">No clinical index for this evaluation (see the notes above).</p>{% endif %}
  {% for block in clinical_blocks %}
    <h3>{{ block.title }}</h3>
    {% if block.text %}<p class="muted">{{ block.text }}</p>{% endif %}
    {% if block.agreement %}{{ table(block.agreement) }}{% endif %}
    {% for fig in block.figures %}<figure><img src="{{ fig.src }}" alt="{{ fig.alt }}"><figcaption>{{ fig.caption }}</figcaption></figure>{% endfor %}
    {% if block.rows %}<div class="scroll">{{ table(block.rows, sortable=True) }}</div>{% endif %}
  {% endfor %}
</section>

<section id="cases">
  <h2>Best, median and worst cases</h2>
  {% if case_figures %}<div class="gallery">{% for fig in case_figures %}<figure><img src="{{ fig.src }}" alt="{{ fig.alt }}"><figcaption>{{ fig.caption }}</figcaption></figure>{% endfor %}</div>
  {% else %}<p class="muted">No case pictures (see the notes above).</p>{% endif %}
</section>

<section id="videos">
  <h2>Videos</h2>
  {% if videos %}<div class="gallery">{% for video in videos %}<figure>
    {% if video.mime.startswith("video/") %}<video controls autoplay muted loop playsinline src="{{ video.src }}"></video>
    {% else %}<img src="{{ video.src }}" alt="{{ video.caption }}">{% endif %}
    <figcaption>{{ video.caption }}</figcaption></figure>{% endfor %}</div>
  {% else %}<p class="muted">No videos (see the notes above).</p>{% endif %}
</section>

<section id="view3d">
  <h2>3D view</h2>
  {% if view3d %}<p class="muted">{{ view3d.caption }} Drag to rotate, scroll to zoom, click a legend entry to hide a surface.</p>
  <div id="view3d-plot" style="height: 520px"></div>
  <script type="application/octet-stream" id="plotly-gz">{{ view3d.plotly_gz }}</script>
  <script type="application/json" id="view3d-figure">{{ view3d.figure | tojson }}</script>
  <script>
  (function () {
    var plot = document.getElementById("view3d-plot");
    if (!("DecompressionStream" in window)) {
      plot.textContent = "This browser cannot unpack the 3D view (it needs Chrome 80, Firefox 113, Safari 16.4 or later): open the volume3d_*.html file of the evaluation folder instead.";
      return;
    }
    var packed = document.getElementById("plotly-gz").textContent.trim();
    var bytes = Uint8Array.from(atob(packed), function (c) { return c.charCodeAt(0); });
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    new Response(stream).text().then(function (code) {
      var library = document.createElement("script");
      library.textContent = code;
      document.head.appendChild(library);
      var figure = JSON.parse(document.getElementById("view3d-figure").textContent);
      return Plotly.newPlot(plot, figure.data, figure.layout, {responsive: true});
    }).catch(function (error) {
      plot.textContent = "3D view not drawn: " + error;
      console.error(error);
    });
  })();
  </script>
  {% else %}<p class="muted">{{ view3d_missing }}</p>{% endif %}
</section>

{% if per_case %}
<section id="per-case">
  <h2>Per-case metrics</h2>
  {% if qc_summary %}<p>{{ qc_summary }}. Cases flagged for a check come first, the most uncertain first.</p>{% endif %}
  <p class="muted">Click a column header to sort.</p>
  <div class="scroll">{{ table(per_case, sortable=True) }}</div>
</section>
{% endif %}

<section id="training">
  <h2>Training</h2>
  {% if training_figure %}<figure><img src="{{ training_figure.src }}" alt="{{ training_figure.alt }}"><figcaption>{{ training_figure.caption }}</figcaption></figure>
  {% else %}<p class="muted">{{ training_missing }}</p>{% endif %}
  {% if config_text %}<details><summary>Configuration</summary><pre>{{ config_text }}</pre></details>{% endif %}
</section>
</main>
<script>
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column];
        var value = cell.getAttribute("data-value");
        return value === null ? cell.textContent.trim() : value;
      }
      var numeric = rows.every(function (row) { var k = key(row); return k === "" || !isNaN(parseFloat(k)); });
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (numeric) {
          if (x === "") return 1; if (y === "") return -1;  // blanks last either way
          return ascending ? parseFloat(x) - parseFloat(y) : parseFloat(y) - parseFloat(x);
        }
        return ascending ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
</script>
</body>
</html>
"""
