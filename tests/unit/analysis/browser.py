"""Check a report in headless Chromium: every plot decoded, and drawn, on the rendered page.

`check_rendered` appends a script to a copy of the page that writes, for every
``img.plot``, whether it loaded (``complete`` and ``naturalWidth > 0``) and its box on the
page into a ``<pre id="plot-check">`` element; ``--dump-dom`` returns that DOM. A
screenshot at the same window size then shows whether each box holds a picture: a plot has
many distinct colours and dark pixels (axes, text), a blank or broken image does not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import image as mpimg

__all__ = ["check_rendered"]

_WINDOW = (1200, 9000)
_SCRIPT = """<script>
window.addEventListener('load', () => {
  const out = [...document.querySelectorAll('img.plot')].map(img => {
    const r = img.getBoundingClientRect();
    return {id: img.id, complete: img.complete, naturalWidth: img.naturalWidth,
            box: [r.left + scrollX, r.top + scrollY, r.width, r.height]};
  });
  const pre = document.createElement('pre');
  pre.id = 'plot-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def check_rendered(chromium: Any, page: Path, work: Path) -> list[dict[str, Any]]:
    """The plots of ``page`` as Chromium rendered them, each with the screenshot's
    statistics in its box (``distinct`` colours, ``dark`` fraction)."""
    probe = work / f"probe-{page.name}"
    probe.write_text(page.read_text().replace("</body>", _SCRIPT + "</body>"))
    dom = chromium.dump_dom(probe.as_uri(), _WINDOW)
    found = re.search(r'<pre id="plot-check">(.*?)</pre>', dom, flags=re.DOTALL)
    assert found, "the check script wrote nothing: the page's scripts did not run"
    plots = json.loads(found.group(1).replace("&quot;", '"'))
    shot = chromium.screenshot(probe.as_uri(), work / f"{page.stem}.png", _WINDOW)
    pixels = mpimg.imread(shot)[..., :3]
    for plot in plots:
        x, y, w, h = (round(v) for v in plot["box"])
        box = pixels[y : y + h, x : x + w].reshape(-1, 3)
        plot["distinct"] = len(np.unique(np.round(box * 255).astype(np.uint8), axis=0))
        plot["dark"] = float(np.mean(box.mean(axis=1) < 0.3)) if box.size else 0.0
    return plots
