"""Screen snapshots with deterministic data (tests/ui/scenes.py): 8 slots at 80x24 (the
compact layout), 24 slots on a large monitor (tiles), the halted banner, the batch summary
and the help screen. `pytest tests/ui/test_snapshots.py --snapshot-update` rewrites them
after a deliberate change; look at the SVGs before committing them."""
from __future__ import annotations

from station.ui.screens.help import HelpScreen
from station.ui.screens.summary import BatchSummary
from tests.ui.scenes import scene_app


def test_main_screen_8_slots_at_80x24(snap_compare):
    assert snap_compare(scene_app(8), terminal_size=(80, 24))


def test_main_screen_24_slots_on_a_large_monitor(snap_compare):
    assert snap_compare(scene_app(24), terminal_size=(200, 50))


def test_halted_banner_at_80x24(snap_compare):
    assert snap_compare(scene_app(8, halted=True), terminal_size=(80, 24))


def test_batch_summary_at_80x24(snap_compare):
    app = scene_app(8, closed=True)

    async def show(pilot):
        app.push_screen(BatchSummary(app.model.batch, app.model.clock()))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=show)


def test_help_screen_at_80x24(snap_compare):
    app = scene_app(8)

    async def show(pilot):
        app.push_screen(HelpScreen(app.hint))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=show)
