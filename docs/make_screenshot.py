"""Regenerate docs/abtop.svg, the README's screenshot: a real run of the bundled pair.

    .venv/bin/python docs/make_screenshot.py
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.base import GenParams  # noqa: E402
from tui.app.app import ABTopApp  # noqa: E402


async def main() -> None:
    app = ABTopApp(
        ["smollm2-135m", "gemma3-270m"], "Explain in two sentences why the sky is blue.", GenParams(max_tokens=96), autostart=True
    )
    async with app.run_test(size=(160, 40)) as pilot:
        await asyncio.wait_for(app.run_finished.wait(), 300)
        await pilot.pause()
        out = Path(__file__).parent
        app.save_screenshot("abtop.svg", path=str(out))
        print(out / "abtop.svg")


asyncio.run(main())
