"""What a person does in the served test section, in headless Chromium (Debian's, through
Playwright): pick cosine_with_restarts_floor in the LR Scheduler menu, set Min LR (floor) and
the cycles, press "Print training command". Run by the Python of a Gradio venv with playwright:

    python browse.py URL SHOTS_PREFIX   # writes SHOTS_PREFIX-menu.png and SHOTS_PREFIX-plot.png

Prints one JSON line: the extra-arguments text the floor wrote, the plot's caption, the TOML shown.
"""

import json
import sys
import tempfile

from playwright.sync_api import sync_playwright

URL, SHOT = sys.argv[1], sys.argv[2]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def clip_of(menu, page) -> dict:
    """The menu's row and its open list of names."""
    box = menu.bounding_box()
    return {"x": max(0, box["x"] - 40), "y": max(0, box["y"] - 60), "width": 760, "height": 420}


def main():
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", args=ARGS, headless=True, viewport={"width": 1280, "height": 1000}
        )
        try:
            page = browser.new_page()
            page.goto(URL)
            menu = page.get_by_label("LR Scheduler", exact=True).first
            menu.wait_for(timeout=60_000)
            section = page.locator(".sdsched-plot").locator("xpath=ancestor::*[contains(@class, 'block')][last()]")
            menu.click()
            menu.fill("floor")
            page.get_by_role("option", name="cosine_with_restarts_floor").wait_for()
            page.screenshot(path=f"{SHOT}-menu.png", clip=clip_of(menu, page))
            page.get_by_role("option", name="cosine_with_restarts_floor").click()
            for label, value in (("Epoch", "4"), ("LR # cycles", "2"), ("Min LR (floor)", "0.5")):
                field = page.get_by_label(label, exact=True)
                field.fill(value)
                field.press("Enter")  # Enter, not Tab: Tab would open the next menu over the picture
            extra = page.get_by_label("LR scheduler extra arguments", exact=True)
            page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('min_value=0.5'))", timeout=30_000)
            page.wait_for_function(
                "() => ['floor 0.5', '4 epoch'].every(t => (document.querySelector('.sdsched-plot svg') || {}).ariaLabel?.includes(t))", timeout=30_000
            )
            caption = page.locator(".sdsched-plot svg").get_attribute("aria-label")
            page.mouse.click(1, 1)
            section.screenshot(path=f"{SHOT}-plot.png")
            page.get_by_role("button", name="Print training command").click()
            shown = page.get_by_label("TOML for sd-scripts", exact=True)
            page.wait_for_function("() => [...document.querySelectorAll('textarea')].some(t => t.value.includes('lr_scheduler ='))", timeout=30_000)
            menu_value = menu.input_value()
            print("BROWSED " + json.dumps({"menu": menu_value, "extra_arguments": extra.input_value(), "caption": caption, "toml": shown.input_value()}), flush=True)
        finally:
            browser.close()


main()
