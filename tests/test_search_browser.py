"""The Search tab in a real browser (the dashboard served by Voila, driven by Playwright with
Debian's chromium): a small search on the zoo, its live plot, and "open the best in Configure".
Screenshots go to artifacts/ (gitignored)."""

from __future__ import annotations

import pytest
from test_dashboard_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_search_tab_runs_a_search_and_opens_the_best_in_configure(server):  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.set_default_timeout(120_000)
        try:
            page.goto(server["url"], timeout=300_000)
            page.locator(".llmcombo-choice-merge-method button").first.wait_for(timeout=300_000)
            page.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text="Search").first.click()
            panel = page.locator(".llmcombo-search-panel")
            expect(panel).to_be_visible()
            trials = page.locator(".llmcombo-search-trials input")
            trials.fill("0")
            trials.press("Tab")
            expect(page.locator(".llmcombo-search-issues")).to_contain_text("search.trials")
            expect(page.locator(".llmcombo-search-start")).to_be_disabled()
            trials.fill("3")
            trials.press("Tab")
            limit = page.locator(".llmcombo-search-limit input")
            limit.fill("12")
            limit.press("Tab")
            expect(page.locator(".llmcombo-search-start")).to_be_enabled()
            page.locator(".llmcombo-search-start").click()
            expect(page.locator(".llmcombo-search-done")).to_be_visible(timeout=600_000)
            expect(page.locator(".llmcombo-search-plot")).to_be_visible()
            expect(page.locator(".llmcombo-search-best")).to_contain_text("best so far")
            expect(page.locator(".llmcombo-search-table")).to_contain_text("parent zoo:domotica")
            page.screenshot(path=str(ARTIFACTS / "search_tab.png"), full_page=True)
            page.locator(".llmcombo-search-open").click()
            # back in Configure, with the best product loaded: valid, so it generates
            expect(page.locator(".llmcombo-choice-merge-method, .llmcombo-configurator").first
                   ).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "search_best_in_configure.png"), full_page=True)
            expect(page.locator(".llmcombo-message")).to_contain_text(
                "best product of the search")
        finally:
            browser.close()
