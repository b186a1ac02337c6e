"""Overview: today and this week at a glance."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from ...store import utcnow
from .. import overview
from ..web import Ctx, Dashboard, page

CHART_W, CHART_H = 720, 160


def routes(dash: Dashboard) -> list[Route]:
    """``/``."""

    @page(dash)
    def home(ctx: Ctx) -> Response:
        now = utcnow()
        with ctx.store.read() as conn:
            windows = {
                label: overview.volumes(conn, start)
                for label, start in overview.window_starts(now, dash.zone).items()
            }
            hours = overview.hourly(conn, now, dash.zone)
            sinks = overview.sinks(conn, now)
            sources = overview.sources(conn, dash.config, now)
        peak = max((c for _, c in hours), default=0) or 1
        bar = CHART_W / len(hours)
        bars = [
            {
                "x": round(i * bar + 1, 1),
                "w": round(bar - 2, 1),
                "h": round(count / peak * (CHART_H - 20), 1),
                "label": label,
                "count": count,
            }
            for i, (label, count) in enumerate(hours)
        ]
        return ctx.render(
            "overview.html",
            windows=windows,
            outcomes=overview.OUTCOMES,
            bars=bars,
            peak=peak,
            total=sum(c for _, c in hours),
            chart_w=CHART_W,
            chart_h=CHART_H,
            sinks=sinks,
            sources=sources,
        )

    return [Route("/", home, methods=["GET"])]
