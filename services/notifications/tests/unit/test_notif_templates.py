"""Template lookup order, fallbacks, locales and HTML escaping (the shipped templates)."""

from __future__ import annotations

from pathlib import Path

import pytest
from handoff_notifications.adapters.templates import (
    TemplateError,
    TemplateRenderer,
    candidates,
)

VARS = {
    "brand": "ACME",
    "recipient_name": "Ada <script>alert(1)</script>",
    "order_id": "A-1001",
    "occurred_on": "21 November 2026",
    "occurred_at": "10:15",
    "milestone": "in_transit",
    "tracking_url": "",
}


def test_lookup_order() -> None:
    assert candidates("acme", "delivered", "email", "de", "en") == [
        "acme/delivered.email.de.j2",
        "default/delivered.email.de.j2",
        "acme/delivered.email.en.j2",
        "default/delivered.email.en.j2",
        "_builtin/generic.email.j2",
    ]


def test_tenant_template_wins(renderer: TemplateRenderer) -> None:
    mail = renderer.email("acme", "delivered", "en", "en", VARS)
    assert mail.template == "acme/delivered.email.en.j2"
    assert mail.subject == "Delivered! Your ACME order A-1001 has arrived"


def test_missing_tenant_template_falls_back_to_default(renderer: TemplateRenderer) -> None:
    mail = renderer.email("globex", "delivered", "de", "de", {**VARS, "brand": "Globex"})
    assert mail.template == "default/delivered.email.de.j2"
    assert mail.subject == "Globex: Ihre Bestellung A-1001 wurde zugestellt"
    assert "wurde am 21 November 2026 um 10:15 zugestellt" in mail.text


def test_unknown_language_falls_back_to_tenant_language(renderer: TemplateRenderer) -> None:
    mail = renderer.email("globex", "picked_up", "fr", "de", VARS)
    assert mail.template == "default/picked_up.email.de.j2"


def test_no_template_at_all_uses_the_builtin(renderer: TemplateRenderer) -> None:
    mail = renderer.email("acme", "in_transit", "en", "en", VARS)
    assert mail.template == "_builtin/generic.email.j2"
    assert mail.subject == "ACME: update on your order A-1001"
    assert "in transit" in mail.text
    sms = renderer.sms("acme", "in_transit", "de", "en", VARS)
    assert sms.text == "ACME: order A-1001 - in transit."


def test_html_is_escaped_but_text_is_not(renderer: TemplateRenderer) -> None:
    mail = renderer.email("acme", "delivered", "en", "en", VARS)
    assert "<script>" not in mail.html
    assert "Ada &lt;script&gt;" in mail.html
    assert "<h1" in mail.html  # the template's own markup survives
    assert "Ada <script>alert(1)</script>" in mail.text


def test_text_only_template_gets_an_escaped_html_part(renderer: TemplateRenderer) -> None:
    mail = renderer.email("acme", "picked_up", "en", "en", VARS)
    assert mail.html.startswith("<p>Hello Ada &lt;script&gt;")


def test_subject_cannot_inject_headers(renderer: TemplateRenderer) -> None:
    mail = renderer.email(
        "acme", "picked_up", "en", "en", {**VARS, "brand": "X\r\nBcc: evil@example.com"}
    )
    assert "\n" not in mail.subject and "\r" not in mail.subject


def test_sandbox_refuses_unsafe_templates(tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "evil.sms.en.j2").write_text("{{ ''.__class__.__mro__ }}")
    with pytest.raises(TemplateError, match="evil"):
        TemplateRenderer(tmp_path).sms("acme", "evil", "en", "en", VARS)


def test_every_shipped_customer_template_renders_in_en_and_de(
    renderer: TemplateRenderer, rulebook: object
) -> None:
    from handoff_notifications.domain.rules import RuleBook

    assert isinstance(rulebook, RuleBook)
    for tenant, rules in rulebook.tenants.items():
        for rule in rules.customer.values():
            for lang in ("en", "de"):
                if "email" in rule.channels:
                    mail = renderer.email(tenant, rule.template, lang, rules.locale, VARS)
                    assert not mail.template.startswith("_builtin"), (tenant, rule, lang)
                    assert "A-1001" in mail.subject
                if "sms" in rule.channels:
                    assert (
                        "A-1001"
                        in renderer.sms(tenant, rule.template, lang, rules.locale, VARS).text
                    )
